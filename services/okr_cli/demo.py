"""``okr demo``: a realistic company seeded through the public gRPC API.

    okr demo [--seed N] [--today YYYY-MM-DD] [--prefix P] [--workers N] [--json]

The company is okr_shared/demo/company.py's plan (``plan_company``), sent by
okr_shared/demo/seeding.py (``seed_company``) — the same two ``make run`` uses
(services/okr_services/run.py). This module is the command: its options, its output
and what an error says to do next.

A re-run with the same ``--seed``/``--today`` finishes an interrupted seeding without
duplicates (the gateway returns ``already_stored`` for steps already done); a tenant
seeded with another seed or on another day is refused with a message saying which
command finishes it (docs/adr/0016).
"""

from __future__ import annotations

import contextlib
import re
import sys
from datetime import date

import click

from okr_shared.demo.company import (
    DEFAULT_SEED, MONTH_1, MONTH_3, NEXT_QUARTER, PEOPLE, PREFIX_PATTERN, QUARTER, TEAMS, YEAR, Plan, plan_company,
    utc_today,
)
from okr_shared.demo.seeding import SeedError, seed_company

from .api import EXIT_AUTH, EXIT_INVALID, ApiError, api_options, emit_json


def _today_option(ctx, param, value):
    if value is None:
        return utc_today()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None
    if day > utc_today():
        raise click.BadParameter(f"{value} is in the future: check-ins cannot be dated after today "
                                 f"({utc_today()}); leave --today out or give an earlier day")
    return day


def _prefix_option(ctx, param, value):
    if value and not PREFIX_PATTERN.match(value):
        raise click.BadParameter(f"{value!r}: 1-32 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return value or ""


@click.command("demo")
@click.option("--seed", type=click.IntRange(min=0), default=DEFAULT_SEED, show_default=True,
              help="Random seed: the same seed and day give the same company (and ids).")
@click.option("--today", default=None, callback=_today_option,
              help="Day the company's 12 weeks end, YYYY-MM-DD (default: today, UTC); not in the future.")
@click.option("--prefix", default="", callback=_prefix_option,
              help="Put PREFIX- before every id (ids are per tenant: needed only for a second demo in one "
                   "tenant).")
@click.option("--workers", type=click.IntRange(1, 32), default=8, show_default=True,
              help="Concurrent calls (one key result or initiative per worker; 1: strictly in order).")
@api_options
def demo_command(api, seed, today, prefix, workers):
    """Seed a realistic company through the API into the key's tenant: a year, a quarter
    (started 12 weeks ago) and its months, 3 teams and 20 people, aligned objectives, key
    results of every kind with 12 weeks of check-ins (some stalled, some slipping),
    corrections, adjustments with reasons, initiatives in every state. Needs an admin
    key; run it on an empty tenant. Interrupted? Run the same command again: it finishes
    without duplicates. Then: okr board --cycle quarter."""
    plan = plan_company(seed, today, prefix)
    counts = plan.counts()
    again = plan.command_line()
    show = not api.json and sys.stderr.isatty()
    if not api.json and not show:
        click.echo(f"seeding the demo company: {counts['calls']} calls …", err=True)
    bar = click.progressbar(length=counts["calls"], label="seeding the demo company", file=sys.stderr,
                            show_pos=True) if show else contextlib.nullcontext()
    shown = [0]

    def progress(done, total):
        if show:
            bar.update(done - shown[0])
            shown[0] = done

    try:
        with bar:
            result = seed_company(api.address, api.key, plan, workers=workers, timeout=api.timeout,
                                  channel=api.channel(), progress=progress)
    except SeedError as e:
        if e.grpc_error is None:
            raise ApiError(f"{e} — run `{again}` again to finish", EXIT_INVALID) from None
        raise explain(api, e, plan) from None
    except KeyboardInterrupt:
        raise ApiError(f"interrupted — run `{again}` to finish (what was stored is recognised, "
                       "nothing is stored twice)", 130) from None
    board = f"okr board --cycle {plan.id(QUARTER)}" + ("" if today == utc_today() else f" --today {today}")
    new = result.calls - result.already_stored
    summary = {"seed": seed, "today": today.isoformat(), "prefix": prefix, "calls": result.calls, "stored": new,
               "already_stored": result.already_stored, "seconds": round(result.seconds, 3),
               "counts": {k: v for k, v in counts.items() if k != "calls"},
               "cycles": {"year": plan.id(YEAR), "quarter": plan.id(QUARTER), "month_closed": plan.id(MONTH_1),
                          "month_current": plan.id(MONTH_3), "next_quarter": plan.id(NEXT_QUARTER)},
               "people": len(PEOPLE), "teams": list(TEAMS), "look": board}
    if api.json:
        emit_json(summary)
        return
    state = ("the demo company was already complete: nothing new stored" if new == 0 else
             f"finished an interrupted seeding: {new} calls stored, {result.already_stored} were already done"
             if result.already_stored else "seeded the demo company")
    n = counts
    click.echo(f"{state} ({result.calls} calls in {result.seconds:.1f} s; `{again}`)")
    click.echo(f"  {n['cycles']} cycles (year ⊃ quarter ⊃ months), {len(PEOPLE)} people in {len(TEAMS)} teams, "
               f"{n['objectives']} objectives, {n['key_results']} key results, {n['initiatives']} initiatives")
    click.echo(f"  {n['check_ins']} check-ins, {n['corrections']} corrections, {n['adjustments']} adjustments, "
               f"{n['owner_changes']} owner changes, {n['alignments']} (re)alignments, {n['archived']} archived, "
               f"{n['initiative_changes']} initiative updates")
    click.echo(f"look: {board}   (stalled: okr history {plan.id('kr-cac')}; corrected and adjusted: "
               f"okr history {plan.id('kr-conversion')})")


def explain(api, e: SeedError, plan: Plan) -> ApiError:
    """The ApiError of a refused call: a tenant seeded differently, a key that may not
    write, or the api.py message plus how to finish."""
    err, again = e.grpc_error, plan.command_line()
    code = err.code().name
    rule = dict(err.trailing_metadata() or ()).get("okr-rule")
    first = e.step is not None and e.step.label == f"cycle:{YEAR}"
    if code == "PERMISSION_DENIED":
        return ApiError(f"this key may not seed ({err.details()}) — okr demo needs an admin key of the tenant "
                        "to seed: `okr keys create --tenant <tenant> --subject <you> --role admin`", EXIT_AUTH)
    if code == "FAILED_PRECONDITION" and first and rule == "cycle_exists":
        origin = _seeded_by(api, plan)
        what = f"a demo company from `{origin}`" if origin else f"a cycle {plan.id(YEAR)!r}"
        finish = f"run exactly `{origin}` to finish or check it, or " if origin else ""
        return ApiError(f"this tenant already has {what} — {finish}seed another tenant (an admin key of it: "
                        "`okr keys create --tenant <new> --subject <you> --role admin`) or use another --prefix",
                        EXIT_INVALID)
    if code == "FAILED_PRECONDITION" and rule == "command_id_reused":  # docs/api.md, "Idempotency"
        return ApiError(f"this plan's calls were already sent to this tenant by another principal — a command id "
                        f"names one request of one principal: finish it with the admin key that started it "
                        f"(`{again}`), or seed another tenant or use another --prefix", EXIT_INVALID)
    error = api.error(err)
    if code == "UNAUTHENTICATED" or e.step is None or first:
        return error
    return ApiError(f"{error} (at step {e.step.label}); then run `{again}` to finish", error.code)


def _seeded_by(api, plan: Plan) -> str | None:
    import grpc

    from okr.v1 import goal_pb2

    try:
        objective = api.stub("goal").GetObjective(goal_pb2.GetObjectiveRequest(objective_id=plan.id("o-year")),
                                                  metadata=api.metadata, timeout=api.timeout)
    except grpc.RpcError:
        return None
    m = re.search(r"`(okr demo --seed \d+ --today \d{4}-\d{2}-\d{2}(?: --prefix \S+)?)`", objective.description)
    return m.group(1) if m else None
