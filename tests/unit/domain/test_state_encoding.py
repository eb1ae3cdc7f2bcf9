"""States as JSON-safe dicts (RPC replies) and snapshots: field by field, the same dict
that ``dataclasses.asdict`` gave before (the reference below), for every state of the
demo company's history, and never sharing a list or dict with the state."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict
from datetime import date

from tests.fixtures.company_history import Script
from okr_shared import domain
from okr_shared.demo.company import plan_company
from okr_shared.domain.state import KeyResult


def reference_to_dict(state) -> dict:
    # asdict's dict made JSON-safe by the json module itself (dates as ISO text): an
    # oracle of its own, not a second copy of the state module's conversion
    d = json.loads(json.dumps(asdict(state), default=lambda v: v.isoformat()))
    if isinstance(state, KeyResult):
        d["check_ins"] = [c.to_dict() for c in state.check_ins]
    return d


def reference_to_snapshot(state: KeyResult) -> dict:
    d = reference_to_dict(state)
    d["check_ins"] = [[*c[:5], c.effective_date.isoformat(), *c[6:]] for c in state.check_ins]
    return d


def company_states():
    plan = plan_company(2026, date(2026, 11, 27))
    script = Script("demo")
    for step in plan.steps():
        script.run(plan.today, "ada", step.command)
    streams = defaultdict(list)
    for e in script.events():
        streams[e.stream_id].append((e.event_type, e.data))
    return {stream: domain.fold(events) for stream, events in streams.items()}


def test_every_state_encodes_as_before_in_the_same_key_order():
    states = company_states()
    kinds = {type(s).__name__ for s in states.values()}
    assert kinds == {"Cycle", "Objective", "KeyResult", "Initiative"}
    assert sum(len(s.check_ins) for s in states.values() if isinstance(s, KeyResult)) > 400
    for stream, state in states.items():
        assert list(state.to_dict().items()) == list(reference_to_dict(state).items()), stream
        if isinstance(state, KeyResult):
            assert list(state.to_snapshot().items()) == list(reference_to_snapshot(state).items()), stream
            assert KeyResult.from_snapshot(state.to_snapshot()) == state
        assert type(state).from_dict(state.to_dict()) == state


def test_the_dict_shares_no_list_or_dict_with_the_state():
    kr = next(s for s in company_states().values() if isinstance(s, KeyResult) and s.check_ins)
    d = kr.to_dict()
    d["check_ins"].clear()
    assert kr.check_ins
