"""The demo company's planner: ``plan_company(seed, today)`` writes a realistic company
as a list of domain commands (``okr_shared.domain.commands``; pure, no I/O — tests run
it through the real deciders). ``seeding.seed_company`` sends a plan through the public
gRPC API; ``okr demo`` (okr_cli/demo.py) and ``make run`` (services/okr_services/run.py)
both use the two.

The company (modelled on tests/fixtures/company_history.py, 20 people): CEO ``carla``,
CFO ``frank``, teams growth / platform / success, each a lead and five members.

- Cycles, relative to ``today`` so the board shows a live picture: the quarter
  (``quarter``) started 83 days ago and ends in a week; the year (``year``) starts with it;
  its first month (``month-1``) is over (moved to review and closed), its last month
  (``month-3``) is the current one; the next quarter (``next-quarter``) is in planning.
- Objectives aligned company → team → individual (some to a key result); one restated
  while planning, one aligned after creation, one realigned, one archived (reasons given).
- Key results of every kind (increase/decrease-to, stay at-or-above/-below, milestone,
  percentage, currency), each with a behaviour: steady, ambitious, slipping, stalling
  (checks in, no progress), ahead (done), silent (stopped checking in), quiet (last
  check-in ten days ago), late start; stay KRs holding, wobbly, breaking, holding late;
  milestones done at some week or still open (one past its due date).
- 12 weeks of check-ins (annual KRs fortnightly), back-dated by ``effective_date`` (all
  statuses are computed from effective dates, docs/scoring.md); a few typos corrected
  (one correction corrected again); targets, due dates and weights adjusted and owners
  reassigned with reasons; one key result archived.
- Initiatives on time, late (with a reason), slipped (with a reason), dropped, never
  started, in progress, in progress past due.

Every column of the board is populated on ``today`` (tests/unit/test_demo_company.py
checks it through the real deciders and read models for several seeds and days).

Deterministic for a seed and a day: the same ids, values and ``command_id``s
(``demo:<seed>:<today>:<step>``). A re-run with the same ``--seed``/``--today`` finishes an
interrupted seeding without duplicates (the gateway returns ``already_stored`` for steps
already done); a tenant seeded with another seed or on another day is refused with a
message saying which command finishes it (docs/adr/0016).
"""

from __future__ import annotations

import csv
import random
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from importlib import resources

from ..clock import utc_today
from ..domain import commands as c


def _templates(name: str) -> tuple[tuple, ...]:
    """The rows of the template table ``name`` (a CSV file of this package), numbers as ints."""
    with resources.files(__package__).joinpath(name).open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return tuple((r["title"], r["kind"], int(r["start_value"]), int(r["target_value"]), r["unit"],
                  r["currency_code"], int(r["decimals"])) for r in rows)


DEFAULT_SEED = 2026
CEO, CFO = "carla", "frank"
#: team -> (lead, members)
TEAMS = {
    "growth": ("gina", ("gus", "hana", "ivan", "jade", "kofi")),
    "platform": ("paul", ("pia", "quinn", "raj", "sara", "tomas")),
    "success": ("sofia", ("uma", "victor", "wen", "xavi", "yusuf")),
}
PEOPLE = (CEO, CFO) + tuple(p for lead, members in TEAMS.values() for p in (lead, *members))
YEAR, QUARTER, MONTH_1, MONTH_3, NEXT_QUARTER = "year", "quarter", "month-1", "month-3", "next-quarter"
#: Days from the quarter's first day to today (today is the last day of week 12).
QUARTER_DAY_OF_TODAY = 83
WEEKS = 12


# ------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Step:
    """One command of the plan; ``label`` is unique in the plan and stable."""

    label: str
    command: object


@dataclass
class Plan:
    """The company as commands: ``phases`` run one after the other; a phase is a list of
    tasks that may run concurrently; a task is a list of steps that run in order (all
    the steps of one task touch one stream, or depend on each other)."""

    seed: int
    today: date
    phases: list[list[list[Step]]] = field(default_factory=list)
    prefix: str = ""

    def steps(self):
        for phase in self.phases:
            for task in phase:
                yield from task

    def command_id(self, step: Step) -> str:
        return f"demo:{self.seed}:{self.today.isoformat()}:{self.prefix}:{step.label}"

    def id(self, name: str) -> str:
        """The id of ``name`` (e.g. ``quarter``, ``kr-signups``) in this plan."""
        return f"{self.prefix}-{name}" if self.prefix else name

    def command_line(self) -> str:
        """The ``okr demo`` command that makes (or finishes) exactly this plan."""
        prefix = f" --prefix {self.prefix}" if self.prefix else ""
        return f"okr demo --seed {self.seed} --today {self.today.isoformat()}{prefix}"

    def counts(self) -> dict[str, int]:
        n = Counter(type(s.command).__name__ for s in self.steps())
        return {
            "cycles": n["PlanCycle"], "objectives": n["CreateObjective"], "key_results": n["DefineKeyResult"],
            "initiatives": n["CreateInitiative"], "check_ins": n["RecordCheckIn"],
            "corrections": n["CorrectCheckIn"], "adjustments": n["AdjustKeyResult"],
            "owner_changes": n["AssignKeyResultOwner"],
            "alignments": n["AlignObjective"] + n["RealignObjective"],
            "archived": n["ArchiveObjective"] + n["ArchiveKeyResult"],
            "initiative_changes": n["StartInitiative"] + n["CompleteInitiative"] + n["DropInitiative"]
            + n["SlipInitiative"],
            "calls": sum(n.values()),
        }


@dataclass
class _KR:
    key_result_id: str
    objective_id: str
    cycle_id: str
    title: str
    kind: str
    start: float
    target: float  # the final target (after any adjustment): values are generated against it
    owner: str
    profile: str
    unit: str = ""
    currency: str = ""
    due: date | None = None  # the final due date; None: the cycle's end
    weight: float = 1.0
    fortnightly: bool = False
    decimals: int = 0
    defined_target: float | None = None  # the target at definition, when adjusted later
    defined_due: date | None = None
    steady_noise: float = 0.03
    individual: bool = False


#: The team objectives an individual objective aligns to, by team.
TEAM_OBJECTIVES = {"growth": ("o-growth-pipeline", "o-growth-brand"),
                   "platform": ("o-platform-reliability", "o-platform-speed"),
                   "success": ("o-success-retention", "o-success-expansion")}


def individual_parent(rng, team: str, person: str, team_krs: dict) -> tuple[str, str]:
    """(parent objective, parent key result) of ``person``'s individual objective: one of
    the team's objectives, in 30 % of the draws one of the team's key results instead;
    Kofi's is aligned only once the quarter has started. The demo and the test
    fixture (tests/fixtures/company_history.py) draw it the same way."""
    parent, parent_kr = rng.choice(TEAM_OBJECTIVES[team]), ""
    if rng.random() < 0.3:
        parent, parent_kr = "", rng.choice(team_krs[team])
    if person == "kofi":
        parent = parent_kr = ""
    return parent, parent_kr


#: The key results an individual objective draws two of: (title, kind, start value, target
#: value, unit, currency code, decimals), from individual_key_results.csv beside this module.
INDIVIDUAL_TEMPLATES = _templates("individual_key_results.csv")
_PROFILES = {
    "linear": (("steady", 3), ("ambitious", 3), ("slipping", 2), ("stalling", 2), ("ahead", 1), ("silent", 1),
               ("quiet", 1), ("late_start", 1)),
    "stay": (("holding", 3), ("wobbly", 2), ("breaking", 1), ("late_hold", 1), ("quiet", 1)),
    "milestone": (("done_at_5", 1), ("done_at_8", 1), ("done_at_11", 1), ("open", 1)),
}
CORRECTION_REASONS = ("Typo in the value", "Late data from finance", "Dashboard had the wrong filter",
                       "Counted a duplicate")
_COMMENTS = ("", "", "On it", "Blocked on data access", "Good week", "Slower than hoped", "Numbers from the dashboard")
_INITIATIVE_TITLES = (
    "Run a pricing experiment", "Automate the weekly report", "Interview ten churned customers",
    "Ship the self-serve onboarding", "Migrate the billing data", "Launch the partner portal",
    "Rewrite the alerting runbook", "Add a health score to the CRM", "Hire a second SRE",
    "Publish three customer stories", "Cut the signup form to three fields", "Load-test the new API",
    "Set up the QBR template", "Move CI to faster runners", "Train the team on the new playbook",
    "Clean up the lead scoring", "Replace the legacy cache", "Start a monthly webinar",
    "Localise the product into German", "Review every on-call page", "Build the renewal dashboard",
    "Run a win/loss analysis", "Introduce feature flags", "Write the escalation policy",
    "Redesign the trial emails", "Add SSO for enterprise accounts", "Tune the database indexes",
    "Open a partner channel in the Nordics", "Create the customer advisory board", "Fix the top ten support macros",
    "Automate the uptime report", "Add a status page", "Shorten the release cycle to one week",
    "Run the referral campaign", "Launch the in-app NPS survey", "Document the incident process",
    "Bundle onboarding into the annual plan", "Set up error budgets per service", "Retire the old admin UI",
    "Build the expansion playbook", "Run a CAC audit of paid channels", "Pilot the enterprise tier",
    "Upgrade to PostgreSQL 16 in staging", "Measure p95 per endpoint", "Offer a migration service",
)
_INITIATIVE_PROFILES = (("on_time", 6), ("late", 3), ("slipped", 3), ("dropped", 2), ("never_started", 2),
                        ("doing", 3), ("doing_overdue", 2))


def _choose(rng: random.Random, weighted) -> str:
    names, weights = zip(*weighted)
    return rng.choices(names, weights)[0]


def _family(kind: str) -> str:
    return "stay" if kind.startswith("STAY") else "milestone" if kind == "MILESTONE" else "linear"


class _Planner:
    def __init__(self, seed: int, today: date):
        self.rng = random.Random(seed)
        self.today = today
        self.last_day = today - timedelta(days=1)  # nothing dated later: the server's today may lag a day
        self.q0 = today - timedelta(days=QUARTER_DAY_OF_TODAY)
        q0 = self.q0
        self.cycles = {  # id -> (cadence, name, start, end, parent)
            YEAR: ("ANNUAL", f"Year {q0:%b %Y} – {q0 + timedelta(days=364):%b %Y}", q0, q0 + timedelta(days=364), ""),
            QUARTER: ("QUARTERLY", f"Quarter {q0:%b} – {q0 + timedelta(days=90):%b %Y}", q0,
                      q0 + timedelta(days=90), YEAR),
            MONTH_1: ("MONTHLY", f"Month 1 ({q0:%d %b} – {q0 + timedelta(days=29):%d %b %Y})", q0,
                      q0 + timedelta(days=29), QUARTER),
            MONTH_3: ("MONTHLY", f"Month 3 ({q0 + timedelta(days=61):%d %b} – {q0 + timedelta(days=90):%d %b %Y})",
                      q0 + timedelta(days=61), q0 + timedelta(days=90), QUARTER),
            NEXT_QUARTER: ("QUARTERLY", f"Next quarter ({q0 + timedelta(days=91):%b} – "
                                        f"{q0 + timedelta(days=181):%b %Y})", q0 + timedelta(days=91),
                           q0 + timedelta(days=181), YEAR),
        }
        self.structure: list[Step] = []
        self.kr_tasks: dict[str, list[Step]] = {}
        self.initiative_tasks: list[list[Step]] = []
        self.closing: list[Step] = []
        self.krs: list[_KR] = []
        self.parents: dict[str, tuple[str, str]] = {}

    def week_start(self, week: int) -> date:
        return self.q0 + timedelta(days=7 * (week - 1))

    def day(self, n: int) -> date:
        """The quarter's day ``n`` (0 = its first day)."""
        return self.q0 + timedelta(days=n)

    # -- structure
    def objective(self, objective_id, cycle, level, title, owner, team="", parent="", parent_kr="", description=""):
        self.parents[objective_id] = (parent, parent_kr)
        self.structure.append(Step(f"objective:{objective_id}", c.CreateObjective(
            objective_id, cycle, level, title, owner, team_id=team, description=description,
            parent_objective_id=parent, parent_key_result_id=parent_kr)))

    def kr(self, spec: _KR) -> None:
        if spec.due is None:
            spec.due = self.cycles[spec.cycle_id][3]
        self.krs.append(spec)
        target = spec.target if spec.defined_target is None else spec.defined_target
        due = spec.due if spec.defined_due is None else spec.defined_due
        self.structure.append(Step(f"kr:{spec.key_result_id}", c.DefineKeyResult(
            spec.key_result_id, spec.objective_id, spec.title, spec.kind, float(spec.start), float(target),
            spec.owner, due.isoformat(), unit=spec.unit, currency_code=spec.currency, weight=spec.weight)))
        self.kr_tasks[spec.key_result_id] = []

    def plan_structure(self, origin: str) -> None:
        for cycle_id, (cadence, name, start, end, parent) in self.cycles.items():
            if cycle_id != NEXT_QUARTER:
                self.structure.append(Step(f"cycle:{cycle_id}", c.PlanCycle(
                    cycle_id, cadence, name, start.isoformat(), end.isoformat(), parent_cycle_id=parent)))
        Q, KR, o = QUARTER, _KR, self.objective
        day = self.day
        o("o-year", YEAR, "COMPANY", "Become the OKR tool mid-size companies love", CEO,
          description=f"Demo company seeded by `{origin}`.")
        self.kr(KR("kr-arr", "o-year", YEAR, "ARR from 2.0M to 4.0M EUR", "CURRENCY", 2_000_000, 4_000_000, CFO,
                   "steady", currency="EUR", fortnightly=True))
        self.kr(KR("kr-customers", "o-year", YEAR, "Paying customers from 400 to 1,000", "INCREASE_TO", 400, 1000,
                   CEO, "slipping", unit="customers", fortnightly=True))
        o("o-q-revenue", Q, "COMPANY", "Win the mid-market", CEO, parent="o-year")
        self.kr(KR("kr-new-arr", "o-q-revenue", Q, "New ARR from 0 to 500k EUR", "CURRENCY", 0, 500_000, CFO,
                   "ambitious", currency="EUR", weight=2.0))
        self.kr(KR("kr-churn", "o-q-revenue", Q, "Net revenue churn from 4.0 % to 2.5 %", "DECREASE_TO", 4.0, 2.5,
                   CFO, "slipping", unit="%", decimals=2))
        self.kr(KR("kr-pilot", "o-q-revenue", Q, "First enterprise pilot signed", "MILESTONE", 0, 1, CEO,
                   "done_at_10", due=day(73)))
        o("o-q-product", Q, "COMPANY", "Make the product a joy to use", CEO, parent="o-year")
        self.kr(KR("kr-nps", "o-q-product", Q, "NPS from 30 to 45", "INCREASE_TO", 30, 45, CEO, "ambitious",
                   unit="NPS", decimals=1))
        self.kr(KR("kr-uptime", "o-q-product", Q, "Uptime at or above 99.9 %", "STAY_AT_OR_ABOVE", 99.5, 99.9,
                   "paul", "holding", unit="%", decimals=2))
        self.kr(KR("kr-latency", "o-q-product", Q, "p95 page load at or below 300 ms", "STAY_AT_OR_BELOW", 420, 300,
                   "paul", "late_hold", unit="ms"))
        o("o-growth-pipeline", Q, "TEAM", "Fill the pipeline", "gina", "growth", "o-q-revenue")
        self.kr(KR("kr-leads", "o-growth-pipeline", Q, "Qualified leads from 120 to 400", "INCREASE_TO", 120, 400,
                   "gina", "steady", unit="leads"))
        self.kr(KR("kr-conversion", "o-growth-pipeline", Q, "Trial to paid conversion from 8 % to 14 %",
                   "PERCENTAGE", 8, 12, "hana", "slipping", unit="%", decimals=1, defined_target=14))
        self.kr(KR("kr-partners", "o-growth-pipeline", Q, "Partner programme launched", "MILESTONE", 0, 1, "gina",
                   "open", due=day(57)))
        o("o-growth-brand", Q, "TEAM", "Be known", "gina", "growth", parent_kr="kr-nps")
        self.kr(KR("kr-signups", "o-growth-brand", Q, "Monthly sign-ups from 500 to 1,500", "INCREASE_TO", 500, 1500,
                   "ivan", "ahead", unit="sign-ups"))
        self.kr(KR("kr-cac", "o-growth-brand", Q, "CAC from 900 to 600 EUR", "CURRENCY", 900, 700, "jade",
                   "stalling", currency="EUR", defined_target=600))
        o("o-platform-reliability", Q, "TEAM", "Never lose a customer's trust", "paul", "platform",
          parent_kr="kr-uptime")
        self.kr(KR("kr-error-budget", "o-platform-reliability", Q, "Error budget burn at or below 50 %",
                   "STAY_AT_OR_BELOW", 80, 50, "pia", "quiet", unit="%"))
        self.kr(KR("kr-mttr", "o-platform-reliability", Q, "Mean time to recovery from 90 to 30 min", "DECREASE_TO",
                   90, 30, "quinn", "steady", unit="min"))
        self.kr(KR("kr-pg16", "o-platform-reliability", Q, "Production on PostgreSQL 16", "MILESTONE", 0, 1, "raj",
                   "done_at_7"))
        o("o-platform-speed", Q, "TEAM", "Make every page feel instant", "paul", "platform", "o-q-product")
        self.kr(KR("kr-p95", "o-platform-speed", Q, "p95 API latency from 450 to 250 ms", "DECREASE_TO", 450, 250,
                   "sara", "silent", unit="ms", due=day(78), defined_due=day(90)))
        self.kr(KR("kr-coverage", "o-platform-speed", Q, "Test coverage from 62 % to 80 %", "PERCENTAGE", 62, 80,
                   "tomas", "late_start", unit="%", decimals=1))
        o("o-success-retention", Q, "TEAM", "Customers stay because they thrive", "sofia", "success",
          parent_kr="kr-churn")
        self.kr(KR("kr-health", "o-success-retention", Q, "Healthy accounts from 55 % to 75 %", "PERCENTAGE", 55, 75,
                   "uma", "ambitious", unit="%", decimals=1))
        self.kr(KR("kr-onboarding", "o-success-retention", Q, "Onboarding time from 21 to 10 days", "DECREASE_TO",
                   21, 10, "victor", "stalling", unit="days", decimals=1))
        self.kr(KR("kr-csat", "o-success-retention", Q, "CSAT at or above 4.5", "STAY_AT_OR_ABOVE", 4.1, 4.5, "wen",
                   "late_hold", unit="points", decimals=2))
        o("o-success-expansion", Q, "TEAM", "Grow with our customers", "sofia", "success", parent_kr="kr-new-arr")
        self.kr(KR("kr-expansion", "o-success-expansion", Q, "Expansion revenue from 0 to 120k EUR", "CURRENCY", 0,
                   120_000, "xavi", "ahead", currency="EUR"))
        self.kr(KR("kr-qbrs", "o-success-expansion", Q, "QBRs held from 0 to 40", "INCREASE_TO", 0, 40, "yusuf",
                   "slipping", unit="QBRs"))
        self.structure.append(Step("restate:o-growth-brand", c.RestateObjective(
            "o-growth-brand", "Be the name people recommend", "Word of mouth first")))

        # Individuals: one objective per member (the first of each team in month 1, the
        # second in month 3, the others in the quarter), two key results each.
        rng = self.rng
        team_krs = {team: [k.key_result_id for k in self.krs if k.objective_id in objectives]
                    for team, objectives in TEAM_OBJECTIVES.items()}
        for team, (lead, members) in TEAMS.items():
            for i, person in enumerate(members):
                cycle = MONTH_1 if i == 0 else MONTH_3 if i == 1 else QUARTER
                objective_id = f"o-{person}"
                parent, parent_kr = individual_parent(rng, team, person, team_krs)
                o(objective_id, cycle, "INDIVIDUAL", f"{person.title()}'s contribution to {team}", person, team,
                  parent, parent_kr)
                for n, template in enumerate(rng.sample(INDIVIDUAL_TEMPLATES, 2), start=1):
                    title, kind, start, target, unit, currency, decimals = template
                    profile = _choose(rng, _PROFILES[_family(kind)])
                    if cycle != QUARTER:  # a month is short: no late start, milestones done early or open
                        if profile == "late_start":
                            profile = "steady"
                        if kind == "MILESTONE":
                            profile = rng.choice(("done_at_11", "open") if cycle == MONTH_3 else ("done_at_3", "open"))
                    self.kr(KR(f"kr-{person}-{n}", objective_id, cycle, title, kind, start, target, person, profile,
                               unit=unit, currency=currency, decimals=decimals, steady_noise=0.08,
                               individual=True))
        for cycle_id in (YEAR, QUARTER, MONTH_1, MONTH_3):
            self.structure.append(Step(f"activate:{cycle_id}", c.ActivateCycle(cycle_id)))

    # -- check-ins
    def plan_check_ins(self) -> None:
        rng = self.rng
        for spec in self.krs:
            task = self.kr_tasks[spec.key_result_id]
            start, end = self.cycles[spec.cycle_id][2:4]
            last = min(self.last_day, end)
            habit = rng.randrange(5)
            confidence = rng.choice((6, 7, 8))
            stall_week, silent_after = rng.choice((4, 5, 6)), rng.choice((5, 6, 7))
            stall_noise = rng.uniform(0.95, 1.05)
            typo_week = 5 if spec.key_result_id == "kr-conversion" else None
            for week in range(2 if spec.fortnightly else 1, WEEKS + 1, 2 if spec.fortnightly else 1):
                offset = min(6, max(0, habit + (rng.choice((-1, 1)) if rng.random() < 0.2 else 0)))
                day = self.week_start(week) + timedelta(days=offset)
                if spec.profile == "quiet" and week >= 11:
                    day = self.today - timedelta(days=10)  # last check-in ten days ago: overdue, not stalled
                    if week > 11:
                        break
                day = min(day, last)
                if day < start or (task and _last_check_in_day(task) >= day):
                    continue
                if spec.profile == "late_start" and week < 4:
                    continue
                if spec.profile == "silent" and week > silent_after:
                    break
                value = self.value(spec, day, week, stall_week, stall_noise)
                drift = {"slipping": -1, "stalling": -1 if week > stall_week else 0, "ahead": 1,
                         "breaking": -1 if week >= 7 else 0}.get(spec.profile, 0)
                confidence = max(0, min(10, confidence + (drift if rng.random() < 0.6 else rng.choice((-1, 0, 0, 1)))))
                check_in_id = f"ci-{spec.key_result_id}-w{week}"
                typo = week == typo_week or (typo_week is None and spec.individual and rng.random() < 0.06)
                comment = rng.choice(_COMMENTS)
                if spec.profile == "stalling" and week > stall_week:
                    comment = rng.choice(("Blocked on data access", "Waiting for the vendor", "No movement"))
                task.append(Step(check_in_id, c.RecordCheckIn(
                    check_in_id, spec.key_result_id, _typo(spec, value, rng) if typo else value, confidence,
                    day.isoformat(), comment=comment)))
                if typo:
                    correction_id = f"cc-{spec.key_result_id}-w{week}"
                    task.append(Step(correction_id, c.CorrectCheckIn(
                        correction_id, check_in_id, spec.key_result_id, value, confidence,
                        rng.choice(CORRECTION_REASONS))))
                    if week == typo_week:  # the correction corrected again
                        task.append(Step(f"cc2-{spec.key_result_id}-w{week}", c.CorrectCheckIn(
                            f"cc2-{spec.key_result_id}-w{week}", correction_id, spec.key_result_id, value,
                            max(0, confidence - 1), "Confidence was too optimistic", comment="Re-checked")))

    def expected(self, spec: _KR, day: date) -> float:
        start = self.cycles[spec.cycle_id][2]
        return max(0.0, min(1.0, (day - start).days / max(1, (spec.due - start).days)))

    def value(self, spec: _KR, day: date, week: int, stall_week: int, stall_noise: float) -> float:
        rng, family, profile = self.rng, _family(spec.kind), spec.profile
        if family == "linear":
            e = self.expected(spec, day)
            noise = rng.uniform(1 - spec.steady_noise, 1 + spec.steady_noise)
            if profile == "ambitious":
                f = 0.85 * e * rng.uniform(0.98, 1.02)
            elif profile == "slipping":
                f = 0.5 * e * rng.uniform(0.97, 1.03)
            elif profile == "stalling":
                f = 0.9 * min(e, self.expected(spec, self.week_start(stall_week))) * \
                    (stall_noise if week >= stall_week else noise)
            elif profile == "ahead":
                f = min(1.0, 1.5 * e)
            elif profile == "late_start":
                f = e * min(1.0, (week - 3) / 7)
            else:  # steady, silent, quiet
                f = e * noise
            f = max(0.0, min(1.0, f))
            value = round(spec.start + f * (spec.target - spec.start), spec.decimals)
            return max(0.0, min(100.0, value)) if spec.kind == "PERCENTAGE" else float(value)
        if family == "stay":
            holds = {"holding": True, "quiet": True, "wobbly": rng.random() < 0.75, "breaking": week < 7,
                     "late_hold": week >= 4}[profile]
            margin = abs(spec.target - spec.start) * rng.uniform(0.05, 0.5)
            above = spec.kind == "STAY_AT_OR_ABOVE"
            step = 10 ** -(spec.decimals or 2)
            value = spec.target + (margin if holds == above else -margin)
            if above and spec.unit == "%":
                value = min(value, 100.0)
            value = round(value, spec.decimals or 2)
            if (value >= spec.target if above else value <= spec.target) != holds:  # rounding landed on the line
                value = round(spec.target + (step if holds == above else -step), spec.decimals or 2)
            return float(value)
        done_week = int(profile.rsplit("_", 1)[1]) if profile.startswith("done_at") else 99
        return 1.0 if week >= done_week else 0.0

    # -- changes with reasons
    def plan_changes(self) -> None:
        t = self.kr_tasks

        def after_week(kr_id: str, week: int, step: Step) -> None:
            steps = t[kr_id]
            at = next((i for i, s in enumerate(steps) if _week_of(s) > week), len(steps))
            steps.insert(at, step)

        after_week("kr-leads", 4, Step("adjust:kr-leads", c.AdjustKeyResult(
            "kr-leads", "Leads matter most this quarter", weight=2.0)))
        after_week("kr-conversion", 6, Step("adjust:kr-conversion", c.AdjustKeyResult(
            "kr-conversion", "Pricing change delayed to the next quarter", target_value=12.0)))
        after_week("kr-p95", 6, Step("adjust:kr-p95", c.AdjustKeyResult(
            "kr-p95", "Release freeze moved the deadline earlier", due_date=self.day(78).isoformat())))
        after_week("kr-cac", 7, Step("adjust:kr-cac", c.AdjustKeyResult(
            "kr-cac", "Paid channels cut: 700 is the realistic floor", target_value=700.0)))
        after_week("kr-onboarding", 5, Step("owner:kr-onboarding", c.AssignKeyResultOwner(
            "kr-onboarding", "wen", "Victor moved to the platform team")))
        after_week("kr-p95", 9, Step("owner:kr-p95", c.AssignKeyResultOwner(
            "kr-p95", "tomas", "Sara is on parental leave")))
        t["kr-hana-2"].append(Step("archive:kr-hana-2", c.ArchiveKeyResult(
            "kr-hana-2", "Metric no longer tracked after the tool change")))
        # After every check-in (phase 3): alignment changes, the archived objective, month 1
        # reviewed and closed, the next quarter planned.
        new_parent = "kr-mttr" if self.parents["o-pia"] != ("", "kr-mttr") else "kr-coverage"
        cadence, name, start, end, parent = self.cycles[NEXT_QUARTER]
        self.closing = [
            Step("align:o-kofi", c.AlignObjective("o-kofi", parent_objective_id="o-growth-brand")),
            Step("realign:o-pia", c.RealignObjective("o-pia", "Recovery time is where I can help most",
                                                     parent_key_result_id=new_parent)),
            Step("archive:o-yusuf", c.ArchiveObjective("o-yusuf", "Yusuf moved to the partnerships team")),
            Step(f"review:{MONTH_1}", c.MoveCycleToReview(MONTH_1)),
            Step(f"close:{MONTH_1}", c.CloseCycle(MONTH_1)),
            Step(f"cycle:{NEXT_QUARTER}", c.PlanCycle(NEXT_QUARTER, cadence, name, start.isoformat(),
                                                      end.isoformat(), parent_cycle_id=parent)),
            Step("objective:o-next-dach", c.CreateObjective("o-next-dach", NEXT_QUARTER, "COMPANY",
                                                            "Open the DACH market", CEO, parent_objective_id="o-year")),
            Step("kr:kr-dach-office", c.DefineKeyResult("kr-dach-office", "o-next-dach", "Berlin office open",
                                                        "MILESTONE", 0.0, 1.0, CEO, end.isoformat())),
        ]

    # -- initiatives
    def plan_initiatives(self) -> None:
        rng, day, last = self.rng, self.day, self.last_day
        forced = {"in-kr-leads-1": "on_time", "in-kr-churn-1": "doing_overdue", "in-kr-nps-1": "doing",
                  "in-kr-mttr-1": "never_started", "in-kr-cac-1": "dropped", "in-kr-conversion-1": "slipped",
                  "in-kr-health-1": "late"}
        titles = list(_INITIATIVE_TITLES)
        rng.shuffle(titles)
        for spec in self.krs:
            if spec.cycle_id != QUARTER or spec.individual:
                continue
            for n in range(1, rng.choice((1, 2, 2, 3)) + 1):
                title = titles.pop() if titles else f"{spec.title}: step {n}"
                initiative_id = f"in-{spec.key_result_id}-{n}"
                profile = forced.get(initiative_id) or _choose(rng, _INITIATIVE_PROFILES)
                start = self.week_start(rng.randrange(1, 8)) + timedelta(days=rng.randrange(5))
                due = start + timedelta(days=7 * rng.randrange(2, 6))
                if profile == "doing" or (profile == "never_started" and initiative_id in forced):
                    start = min(start, day(70)) if profile == "doing" else day(QUARTER_DAY_OF_TODAY + 1)
                    due = day(88)
                elif profile == "doing_overdue":
                    due = min(due, day(QUARTER_DAY_OF_TODAY - 3))
                elif initiative_id in forced:
                    start, due = day(9), day(40)
                lead = next((lead for lead, members in TEAMS.values() if spec.owner in members), spec.owner)
                assignee = rng.choice((spec.owner, spec.owner, lead))
                steps = [Step(f"initiative:{initiative_id}", c.CreateInitiative(
                    initiative_id, spec.key_result_id, title, assignee, start.isoformat(),
                    due.isoformat()))]
                self.initiative_tasks.append(steps)

                def when(on: date, step: Step) -> None:
                    if on <= last:
                        steps.append(step)

                if profile == "never_started":
                    continue
                if profile == "dropped":
                    when(start + timedelta(days=rng.randrange(3, 10)), Step(f"drop:{initiative_id}", c.DropInitiative(
                        initiative_id, rng.choice(("Superseded by the pricing work", "Vendor went out of business")))))
                    continue
                when(start, Step(f"start:{initiative_id}", c.StartInitiative(initiative_id, start.isoformat())))
                if len(steps) == 1:
                    continue
                if profile == "on_time":
                    done = max(start, due - timedelta(days=rng.randrange(0, 6)))
                    when(done, Step(f"complete:{initiative_id}", c.CompleteInitiative(initiative_id, done.isoformat())))
                elif profile == "late":
                    done = due + timedelta(days=rng.randrange(2, 10))
                    when(done, Step(f"complete:{initiative_id}", c.CompleteInitiative(
                        initiative_id, done.isoformat(), reason="Waited on a legal review")))
                elif profile == "slipped":
                    new_due = max(due + timedelta(days=7 * rng.randrange(1, 4)), day(QUARTER_DAY_OF_TODAY + 2)) \
                        if initiative_id in forced else due + timedelta(days=7 * rng.randrange(1, 4))
                    when(due - timedelta(days=2), Step(f"slip:{initiative_id}", c.SlipInitiative(
                        initiative_id, new_due.isoformat(), "The data migration took longer than planned")))
                    if initiative_id not in forced and rng.random() < 0.5 and steps[-1].label.startswith("slip"):
                        when(new_due, Step(f"complete:{initiative_id}", c.CompleteInitiative(
                            initiative_id, new_due.isoformat())))
                # doing, doing_overdue: started, not finished


def _week_of(step: Step) -> int:
    m = re.search(r"-w(\d+)$", step.label)
    return int(m.group(1)) if m else 0


def _last_check_in_day(task: list[Step]) -> date:
    for step in reversed(task):
        if isinstance(step.command, c.RecordCheckIn):
            return date.fromisoformat(step.command.effective_date)
    return date.min


def _typo(spec: _KR, value: float, rng: random.Random) -> float:
    if spec.kind == "MILESTONE":
        return 1.0 - value
    wrong = round(value + (spec.target - spec.start) * rng.choice((-0.3, 0.3)), spec.decimals)
    if spec.kind == "PERCENTAGE":
        wrong = max(0.0, min(100.0, wrong))
    return float(wrong) if wrong != value else value + 1


PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_ID_FIELDS = ("cycle_id", "parent_cycle_id", "objective_id", "parent_objective_id", "parent_key_result_id",
              "key_result_id", "initiative_id", "check_in_id", "corrects_check_in_id")


def plan_company(seed: int = DEFAULT_SEED, today: date | None = None, prefix: str = "") -> Plan:
    """The demo company as commands (no I/O): phase 1 the structure (sequential), phase 2
    one task per key result (check-ins, corrections, adjustments, owner changes) and per
    initiative, phase 3 the changes that follow the quarter's work. ``prefix`` (letters,
    digits, ``_ . -``; up to 32) goes before every id, so that one tenant can hold two
    demos (ids are per tenant: every tenant can have the same one, ADR 0023)."""
    today = today or utc_today()
    if prefix and not PREFIX_PATTERN.match(prefix):
        raise ValueError(f"prefix: 1-32 letters, digits, '_', '.' or '-' starting with a letter or digit, "
                         f"not {prefix!r}")
    plan = Plan(seed, today, prefix=prefix)
    planner = _Planner(seed, today)
    planner.plan_structure(plan.command_line())
    planner.plan_check_ins()
    planner.plan_changes()
    planner.plan_initiatives()
    tasks = [t for t in planner.kr_tasks.values() if t] + planner.initiative_tasks
    plan.phases = [[planner.structure], tasks, [planner.closing]]
    if prefix:
        plan.phases = [[[Step(s.label, _prefixed(s.command, plan)) for s in task] for task in phase]
                       for phase in plan.phases]
    return plan


def _prefixed(command, plan: Plan):
    changes = {name: plan.id(getattr(command, name)) for name in _ID_FIELDS
               if getattr(command, name, "")}
    return replace(command, **changes)

