"""The notification service for real, on both backends (SQLite, PostgreSQL): events from
an event store through the outbox relay and the real RabbitMQ into the service's rules;
deliveries to a local webhook receiver and a local SMTP server; the timed rules driven by
a controllable clock; redelivery, retries, failures and bad input over RPC.

Each test has a tenant of its own (the world is shared per module and backend); the
timed rules' test runs last (it moves the clock weeks ahead).

(Fixtures in notification_fixtures.py.)
"""

# ruff: noqa: F811

from __future__ import annotations

import email
import email.policy
from datetime import date, datetime, timezone

import pytest
from nameko.exceptions import RemoteError

from okr_shared.domain import commands as c
from okr_services.notification import delivery as dl

from .notification_fixtures import MAX_ATTEMPTS, SENDER, check_in, company, wait_until, world  # noqa: F401

D = date


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def summary(rows, *fields) -> list[tuple]:
    fields = fields or ("rule", "subject", "recipient", "channel")
    return sorted(tuple(r[f] for f in fields) for r in rows)


def new_rows(world, tenant, before) -> list[dict]:
    seen = {r["id"] for r in before}
    return [r for r in world.settled(tenant) if r["id"] not in seen]


def subscribe_hooks(world, api, tenant, *people, **rules) -> dict[str, str]:
    """A webhook answering 200 for each person (path /<tenant>/<person>); returns the paths."""
    paths = {}
    for person in people:
        path = f"/{tenant}/{person.replace(':', '-')}"
        url = world.receiver.answer(path, 200, b'{"ok": true}')
        api.subscribe(person, "webhook", url, rules=rules.get(person.replace(":", "_")))
        paths[person] = path
    return paths


def position_of(events, event_type, **data) -> int:
    (found,) = [e for e in events if e.event_type == event_type
                and all(e.data.get(k) == v for k, v in data.items())]
    return found.position


# ------------------------------------------------------------------------ event rules


def test_check_in_rules_fire_when_a_key_result_gets_worse_and_stay_silent_otherwise(world):
    t = "ev"
    api = world.rpc(t)
    paths = subscribe_hooks(world, api, t, "kim", "olga",
                            olga=["kr_status_dropped", "kr_adjusted", "initiative_slipped"])
    api.subscribe("olga", "email", "olga@ev.test")  # every rule; kai (kr2's owner) subscribes to nothing
    kr1, kr2 = f"{t}-kr1", f"{t}-kr2"
    s = company(t)
    # expected progress: 8 Jan .079, 15 Jan .157, 22 Jan .236, 29 Jan .315, 5 Feb .393
    for day, v1, conf1, v2 in ((D(2026, 1, 8), 10, 9, 10), (D(2026, 1, 15), 20, 8, 20),  # confidence -1
                               (D(2026, 1, 22), 30, 6, 25),  # confidence -2: below the default 3
                               (D(2026, 1, 29), 10, 3, 32)):  # kr1 on track -> at risk, confidence -3
        check_in(s, day, "kim", kr1, v1, conf1)
        check_in(s, day, "kai", kr2, v2, 8)  # kr2 stays on track, confidence steady
    events = world.append(s)
    rows = world.settled(t)
    assert summary(rows) == [
        ("confidence_dropped", kr1, "kim", "webhook"),
        ("confidence_dropped", kr1, "olga", "email"),  # olga's webhook only wants three rules
        ("kr_status_dropped", kr1, "kim", "webhook"),
        ("kr_status_dropped", kr1, "olga", "email"),
        ("kr_status_dropped", kr1, "olga", "webhook"),
    ]
    assert {r["status"] for r in rows} == {"sent"} and {r["attempts"] for r in rows} == {1}
    drop = position_of(events, "okr.v1.CheckInRecorded", key_result_id=kr1, effective_date="2026-01-29")
    assert {(r["rule"], r["period"]) for r in rows} == {("confidence_dropped", f"p{drop}"),
                                                        ("kr_status_dropped", "2026-01-29:AT_RISK")}

    kim = {b["rule"]: b for b in world.receiver.bodies(paths["kim"])}
    assert sorted(kim) == ["confidence_dropped", "kr_status_dropped"] and len(world.receiver.to(paths["kim"])) == 2
    status = kim["kr_status_dropped"]
    assert status["data"]["status"] == "AT_RISK" and status["data"]["was"] == "ON_TRACK"
    assert status["title"] == "At risk: Signups 0 → 100" and status["recipient"] == "kim"
    assert kim["confidence_dropped"]["data"]["from"] == 6 and kim["confidence_dropped"]["data"]["to"] == 3
    (olga,) = world.receiver.bodies(paths["olga"])
    assert olga["rule"] == "kr_status_dropped" and olga["subject"] == kr1 and olga["recipient"] == "olga"

    # the threshold is a setting: two points now count, for the events from now on
    settings = api.update_settings({"rules": {"confidence_dropped": {"points": 2}}})
    assert settings["rules"]["confidence_dropped"] == {"enabled": True, "points": 2}
    check_in(s, D(2026, 2, 5), "kim", kr1, 40, 1)  # off track -> on track (better), confidence -2
    check_in(s, D(2026, 2, 5), "kai", kr2, 5, 8)  # on track -> off track; kai has no subscription
    events = world.append(s)
    added = new_rows(world, t, rows)
    assert summary(added) == [
        ("confidence_dropped", kr1, "kim", "webhook"),
        ("confidence_dropped", kr1, "olga", "email"),
        ("kr_status_dropped", kr2, "olga", "email"),
        ("kr_status_dropped", kr2, "olga", "webhook"),
    ]
    assert {r["status"] for r in added} == {"sent"}
    assert api.deliveries(recipient="kai") == []  # the rule addressed kai too: no subscription, nothing
    bodies = world.receiver.bodies(paths["olga"])
    assert len(bodies) == 2 and bodies[-1]["data"]["status"] == "OFF_TRACK" and bodies[-1]["data"]["was"] == "ON_TRACK"
    assert api.delivery_counts() == {"pending": 0, "sent": 9, "retrying": 0, "failed": 0}


def test_adjustments_and_initiatives_go_to_the_objective_owner_with_the_reason(world):
    t = "adj"
    api = world.rpc(t)
    paths = subscribe_hooks(world, api, t, "kim", "olga", "kai")
    s = company(t)
    kr1, kr2, i1, i2 = f"{t}-kr1", f"{t}-kr2", f"{t}-i1", f"{t}-i2"
    s.run(D(2026, 1, 20), "gina", c.AdjustKeyResult(kr1, reason="The market halved", target_value=80.0))
    s.run(D(2026, 1, 21), "kim", c.SlipInitiative(i1, "2026-03-01", "The vendor is late"))
    s.run(D(2026, 1, 22), "kim", c.DropInitiative(i2, "Out of budget"))
    world.append(s)
    rows = world.settled(t)
    assert summary(rows) == [("initiative_slipped", i1, "olga", "webhook"),
                             ("initiative_slipped", i2, "olga", "webhook"),
                             ("kr_adjusted", kr1, "olga", "webhook")]
    assert {r["status"] for r in rows} == {"sent"}
    assert world.receiver.to(paths["kim"]) == [] and world.receiver.to(paths["kai"]) == []
    bodies = {(b["rule"], b["subject"]): b for b in world.receiver.bodies(paths["olga"])}
    adjusted = bodies[("kr_adjusted", kr1)]
    assert adjusted["data"]["reason"] == "The market halved" and "Reason: The market halved" in adjusted["text"]
    assert adjusted["data"]["changes"] == {"target": "100 → 80"} and adjusted["data"]["actor"] == "gina"
    slipped, dropped = bodies[("initiative_slipped", i1)], bodies[("initiative_slipped", i2)]
    assert slipped["data"]["reason"] == "The vendor is late" and slipped["data"]["dropped"] is False
    assert slipped["data"]["new_due_date"] == "2026-03-01" and slipped["title"].startswith("Initiative slipped")
    assert dropped["data"]["reason"] == "Out of budget" and dropped["data"]["dropped"] is True
    assert "Reason: Out of budget" in dropped["text"]

    # a disabled rule stays silent; the others go on
    assert api.update_settings({"rules": {"kr_adjusted": {"enabled": False}}})["rules"]["kr_adjusted"]["enabled"] is False
    s.run(D(2026, 1, 26), "gina", c.AdjustKeyResult(kr2, reason="Scope cut", target_value=50.0))
    s.run(D(2026, 1, 27), "kim", c.SlipInitiative(i1, "2026-03-15", "Still late"))
    world.append(s)
    added = new_rows(world, t, rows)
    assert summary(added, "rule", "subject", "recipient", "status") == [("initiative_slipped", i1, "olga", "sent")]
    assert api.deliveries(rule="kr_adjusted") and len(api.deliveries(rule="kr_adjusted")) == 1
    assert len(world.receiver.to(paths["olga"])) == 4


def wait_for_dispatch_rounds(world, n: int = 3) -> None:
    """Wait until the service's dispatcher has run ``n`` whole rounds that began now or
    later: whatever was due by now has then been sent (counted on its ``run_once``)."""
    (dispatcher,) = [d.dispatcher for d in world.container.dependencies if hasattr(d, "dispatcher")]
    rounds = []
    run_once = dispatcher.run_once

    def counted():
        try:
            return run_once()
        finally:
            rounds.append(1)

    dispatcher.run_once = counted
    try:
        wait_until(lambda: len(rounds) >= n, timeout=15, message=f"{n} dispatch rounds")
    finally:
        del dispatcher.run_once


# ----------------------------------------------------------------------- redelivery


def test_redelivered_events_send_nothing_twice(world):
    t = "redo"
    api = world.rpc(t)
    paths = subscribe_hooks(world, api, t, "kim", "olga")
    s = company(t)
    kr1 = f"{t}-kr1"
    check_in(s, D(2026, 1, 8), "kim", kr1, 10, 8)
    check_in(s, D(2026, 1, 15), "kim", kr1, 20, 8)
    check_in(s, D(2026, 1, 22), "kim", kr1, 5, 4)  # at risk ... off track, and confidence -4
    s.run(D(2026, 1, 23), "gina", c.AdjustKeyResult(kr1, reason="Reality check", target_value=60.0))
    events = world.append(s)
    rows = world.settled(t)
    assert summary(rows, "rule", "recipient") == [("confidence_dropped", "kim"), ("confidence_dropped", "olga"),
                                                  ("kr_adjusted", "olga"),
                                                  ("kr_status_dropped", "kim"), ("kr_status_dropped", "olga")]
    counts = api.delivery_counts()
    assert counts["sent"] == 5
    requests = {p: len(world.receiver.to(p)) for p in paths.values()}
    assert requests == {paths["kim"]: 2, paths["olga"]: 3}

    stats = world.entrypoint().stats
    seen = stats.duplicates
    world.publish_again(*events, *reversed(events))
    wait_until(lambda: stats.duplicates >= seen + 2 * len(events), timeout=15,
               message=f"{2 * len(events)} duplicates")
    wait_for_dispatch_rounds(world)  # anything enqueued would have gone out now
    assert api.delivery_counts() == counts
    assert world.rows(t) == rows
    assert {p: len(world.receiver.to(p)) for p in paths.values()} == requests


# ------------------------------------------------------------------ retries, failures


def test_a_flaky_receiver_gets_one_delivery_and_a_dead_one_does_not_block_the_others(world):
    t = "retry"
    api = world.rpc(t)
    flaky = world.receiver.script(f"/{t}/kim", 503, 503, 200)
    dead = world.receiver.answer(f"/{t}/olga", 500, b'{"error": "it is all broken"}')
    api.subscribe("kim", "webhook", flaky)
    api.subscribe("olga", "webhook", dead)
    api.subscribe("olga", "email", "olga@retry.test")
    s = company(t)
    kr1 = f"{t}-kr1"
    for day, value in ((D(2026, 1, 8), 10), (D(2026, 1, 15), 20), (D(2026, 1, 22), 30), (D(2026, 1, 29), 10)):
        check_in(s, day, "kim", kr1, value, 8)  # on track -> at risk on 29 Jan, to kim and olga
    world.append(s)
    rows = world.settled(t)
    by = {(r["recipient"], r["channel"]): r for r in rows}
    assert sorted(by) == [("kim", "webhook"), ("olga", "email"), ("olga", "webhook")]
    assert {r["rule"] for r in rows} == {"kr_status_dropped"}

    kim = by[("kim", "webhook")]
    assert (kim["status"], kim["attempts"]) == ("sent", 3) and kim["sent_at_us"] is not None
    attempts = world.receiver.to(f"/{t}/kim")
    assert len(attempts) == 3  # 503, 503, then 200 — and nothing after the 200
    assert len({a.headers["X-OKR-Delivery"] for a in attempts}) == 1  # the same delivery each time

    olga = by[("olga", "webhook")]
    assert (olga["status"], olga["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert "HTTP 500" in olga["last_error"] and olga["sent_at_us"] is None
    assert len(world.receiver.to(f"/{t}/olga")) == MAX_ATTEMPTS
    mail = by[("olga", "email")]  # the same notification on another channel: not held up
    assert (mail["status"], mail["attempts"]) == ("sent", 1)
    assert mail["sent_at_us"] < olga["updated_at_us"]

    (failed,) = api.deliveries(status="failed")
    assert failed["recipient"] == "olga" and failed["channel"] == "webhook" and "HTTP 500" in failed["last_error"]
    assert api.delivery_counts() == {"pending": 0, "sent": 2, "retrying": 0, "failed": 1}
    wait_for_dispatch_rounds(world)  # a failed delivery stays failed: no more attempts
    assert len(world.receiver.to(f"/{t}/olga")) == MAX_ATTEMPTS and len(world.receiver.to(f"/{t}/kim")) == 3


# ---------------------------------------------------------------------------- e-mail


def test_email_carries_text_and_html_with_the_title_as_subject(world):
    t = "mail"
    api = world.rpc(t)
    api.subscribe("olga", "email", "olga@mail.test")
    s = company(t)
    kr1 = f"{t}-kr1"
    check_in(s, D(2026, 1, 8), "kim", kr1, 20, 8)
    check_in(s, D(2026, 1, 15), "kim", kr1, 5, 8)  # on track -> at risk
    world.append(s)
    (row,) = world.settled(t)
    assert (row["rule"], row["status"]) == ("kr_status_dropped", "sent")
    (shown,) = api.deliveries()
    mails = wait_until(lambda: [m for m in world.smtp.messages() if m["rcpt_tos"] == ["olga@mail.test"]],
                       timeout=10, message="the e-mail")
    assert len(mails) == 1 and mails[0]["mail_from"] == SENDER
    message = email.message_from_bytes(mails[0]["content"].encode("utf-8"), policy=email.policy.default)
    assert message["Subject"] == shown["title"] == "At risk: Signups 0 → 100"
    assert message["To"] == "olga@mail.test"
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert message.get_content_type() == "multipart/alternative"
    assert '"Signups 0 → 100" is now at risk (was on track).' in plain
    assert "<p>" in html and "is now at risk (was on track)." in html and "&quot;Signups 0 → 100&quot;" in html


# ------------------------------------------------------------------------- bad input


def test_bad_input_over_rpc_is_a_validation_error_naming_the_field_and_saves_nothing(world):
    t = "bad"
    api = world.rpc(t)
    good = world.receiver.answer(f"/{t}/kim")
    api.subscribe("kim", "webhook", good, rules=["kr_stalled"])
    subscriptions, settings = api.subscriptions(), api.settings()
    assert [(s["subscriber"], s["channel"], s["rules"]) for s in subscriptions] == [("kim", "webhook", ["kr_stalled"])]
    cases = [
        ((api.subscribe, "kim", "email", "not-an-email"), {}, "target"),
        ((api.subscribe, "kim", "webhook", "ftp://x"), {}, "target"),
        ((api.subscribe, "kim", "pager", "kim@bad.test"), {}, "channel"),
        ((api.subscribe, "kim", "webhook", good), {"rules": ["kr_stalled", "no_such_rule"]}, "rules"),
        ((api.subscribe, "kim", "webhook", good), {"rules": "kr_stalled"}, "rules"),
        ((api.subscribe, "not a person!", "webhook", good), {}, "subscriber"),
        ((api.set_timezone, "kim", "Mars/Olympus_Mons"), {}, "timezone"),
        ((api.set_timezone, "team:growth", "Europe/Berlin"), {}, "person"),
        ((api.update_settings, {"timezone": "Nowhere/City"}), {}, "timezone"),
        ((api.update_settings, {"rules": {"no_such_rule": {"enabled": True}}}), {}, "rules"),
        ((api.update_settings, {"rules": {"kr_adjusted": {"enabled": "yes"}}}), {}, "rules.kr_adjusted.enabled"),
        ((api.update_settings, {"rules": {"checkin_reminder": {"hour": 24}}}), {}, "rules.checkin_reminder.hour"),
        ((api.deliveries,), {"status": "lost"}, None),
    ]
    for (call, *args), kwargs, field in cases:
        with pytest.raises(RemoteError) as refused:
            call(*args, **kwargs)
        error = refused.value
        assert error.exc_type == "ValidationError", (args, kwargs, error)
        if field is not None:
            assert error.value.startswith(f"{field}: "), (args, kwargs, error.value)
    assert api.subscriptions() == subscriptions  # nothing saved, the good one untouched
    assert api.settings() == settings
    with pytest.raises(RemoteError) as unknown:
        api.unsubscribe("s-no-such-subscription")
    assert unknown.value.exc_type == "NotFound"
    # a call without a tenant
    nobody = world.rpc("")
    with pytest.raises(RemoteError) as no_tenant:
        nobody.subscriptions()
    assert no_tenant.value.exc_type == "ValidationError" and no_tenant.value.value.startswith("tenant_id: ")


# ------------------------------------------------------------------------ timed rules


def test_timed_rules_follow_the_clock_once_per_period_across_a_restart(world):
    t = "tm"
    api = world.rpc(t)
    paths = subscribe_hooks(world, api, t, "kim", "kai", "olga", "pat", "paula", "team:growth", "lena", "carla",
                            "gina", "sofia")
    api.update_settings({"leads": {"growth": ["lena"], "*": ["carla"], "platform": ["gina"], "success": ["sofia"]},
                         "rules": {"team_digest": {"weekday": "FRI", "hour": 12}}})
    assert api.set_timezone("kim", "Asia/Tokyo") is True  # UTC+9; everyone else: the tenant's UTC
    s = company(t)
    kr1, kr2, kr3, kr4 = f"{t}-kr1", f"{t}-kr2", f"{t}-kr3", f"{t}-kr4"
    s.run(D(2026, 1, 1), "kim", c.DefineKeyResult(kr3, f"{t}-o", "Reviews 0 → 100", "INCREASE_TO", 0, 100, "kim",
                                                 "2026-03-31"))
    # team platform's objective (paula) and a key result due 28 Feb: expected progress (d - 1 Jan) / 58 days
    s.run(D(2026, 1, 1), "paula", c.CreateObjective(f"{t}-o2", f"{t}-q1", "TEAM", "Run faster", "paula",
                                                    team_id="platform"))
    s.run(D(2026, 1, 1), "pat", c.DefineKeyResult(kr4, f"{t}-o2", "Latency 0 → 100", "INCREASE_TO", 0, 100, "pat",
                                                 "2026-02-28"))
    for day, kr, value in ((D(2026, 1, 8), kr1, 10), (D(2026, 1, 8), kr2, 10), (D(2026, 1, 8), kr3, 10),
                           (D(2026, 1, 15), kr1, 20), (D(2026, 1, 20), kr3, 20), (D(2026, 1, 22), kr1, 25),
                           (D(2026, 1, 22), kr2, 25), (D(2026, 1, 29), kr1, 30), (D(2026, 2, 3), kr3, 40),
                           (D(2026, 2, 10), kr2, 48), (D(2026, 2, 10), kr4, 70)):
        check_in(s, day, {kr2: "kai", kr4: "pat"}.get(kr, "kim"), kr, value, 7)
    world.append(s)
    assert world.settled(t) == []  # none of these check-ins made anything worse

    def tick_at(moment):
        world.clock.set(moment)
        world.tick()
        return world.settled(t)

    def new_since(before, *fields):
        return summary(new_rows(world, t, before), *(fields or ("rule", "subject", "recipient", "period")))

    # Fri 13 Feb 2026 (ISO week 7), 00:30 UTC = 09:30 in Tokyo: kr1 last progressed 15 days
    # ago (stalled), kr3 last checked in 10 days ago (overdue), kr2 and kr4 3 days ago (on track)
    rows = tick_at(utc(2026, 2, 13, 0, 30))
    assert summary(rows, "rule", "subject", "recipient", "period") == [
        ("kr_checkin_overdue", kr3, "kim", "2026-W07"), ("kr_checkin_overdue", kr3, "olga", "2026-W07"),
        ("kr_stalled", kr1, "kim", "2026-W07"), ("kr_stalled", kr1, "olga", "2026-W07"),
    ]
    stalled = [b for b in world.receiver.bodies(paths["olga"]) if b["rule"] == "kr_stalled"]
    assert len(stalled) == 1 and stalled[0]["data"]["days_since_check_in"] == 15
    assert tick_at(utc(2026, 2, 13, 0, 45)) == rows  # the same week: not again

    # 01:00 UTC = 10:00 in Tokyo: kim's reminder (kr1 and kr3), not kai's nor pat's (01:00 for them)
    before = rows
    rows = tick_at(utc(2026, 2, 13, 1, 0))
    assert new_since(before, "rule", "subject", "recipient", "period", "status") == [
        ("checkin_reminder", "kim", "kim", "2026-W07", "sent")]
    (body,) = [b for b in world.receiver.bodies(paths["kim"]) if b["rule"] == "checkin_reminder"]
    assert body["data"]["key_result_ids"] == [kr1, kr3] and body["title"] == "Weekly check-in: 2 key results"
    with world.db_engine.connect() as conn:
        assert dl.last_period(conn, t, "checkin_reminder", "kai") is None

    # a restart, then 10:00 UTC: kai's and pat's hour — but they checked in 3 days ago: the
    # week is claimed, nothing sent; kim's reminder is not repeated; the digest's hour (12:00)
    # is not there yet
    world.stop_service()
    world.start_service()
    assert tick_at(utc(2026, 2, 13, 10, 0)) == rows
    with world.db_engine.connect() as conn:
        for person in ("kai", "pat", "kim"):
            assert dl.last_period(conn, t, "checkin_reminder", person) == "2026-W07", person

    # 12:00 UTC: the team digest, to team:growth, with the status counts
    before = rows
    rows = tick_at(utc(2026, 2, 13, 12, 0))
    assert new_since(before) == [("team_digest", "growth", "team:growth", "2026-W07")]
    (digest,) = world.receiver.bodies(paths["team:growth"])
    assert digest["data"]["statuses"] == {"CHECK_IN_OVERDUE": 1, "ON_TRACK": 1, "STALLED": 1}
    assert digest["title"] == "Weekly OKR digest — growth — 2026-W07"

    # Tue 17 Feb (week 8): kr4 fell behind its pace without an event (expected .81, at .70):
    # at risk, to pat and paula, once; kr1 still stalled, kr3 overdue (14 days) — this week's
    before = rows
    rows = tick_at(utc(2026, 2, 17, 0, 30))
    assert new_since(before) == [
        ("kr_checkin_overdue", kr3, "kim", "2026-W08"), ("kr_checkin_overdue", kr3, "olga", "2026-W08"),
        ("kr_stalled", kr1, "kim", "2026-W08"), ("kr_stalled", kr1, "olga", "2026-W08"),
        ("kr_status_dropped", kr4, "pat", "2026-02-17:AT_RISK"),
        ("kr_status_dropped", kr4, "paula", "2026-02-17:AT_RISK"),
    ]
    (drop,) = world.receiver.bodies(paths["pat"])
    assert drop["data"]["status"] == "AT_RISK" and drop["data"]["was"] == "ON_TRACK"
    assert tick_at(utc(2026, 2, 17, 6, 0)) == rows

    # Fri 20 Feb 01:00 UTC (10:00 in Tokyo): kim's reminder again; kr3 (17 days without
    # progress) stalled now; kr2 and kr4 (10 days) overdue; no digest before 12:00
    before = rows
    rows = tick_at(utc(2026, 2, 20, 1, 0))
    assert new_since(before) == [
        ("checkin_reminder", "kim", "kim", "2026-W08"),
        ("kr_checkin_overdue", kr2, "kai", "2026-W08"), ("kr_checkin_overdue", kr2, "olga", "2026-W08"),
        ("kr_checkin_overdue", kr4, "pat", "2026-W08"), ("kr_checkin_overdue", kr4, "paula", "2026-W08"),
        ("kr_stalled", kr3, "kim", "2026-W08"), ("kr_stalled", kr3, "olga", "2026-W08"),
    ]
    assert {r["status"] for r in rows} == {"sent"}
    assert len([b for b in world.receiver.bodies(paths["kim"]) if b["rule"] == "checkin_reminder"]) == 2

    # the cycle review: 7 days before 31 Mar, once, to the company's leads and those of the
    # teams with objectives in the cycle
    def reviews():
        return [r for r in world.rows(t) if r["rule"] == "cycle_review_due"]

    tick_at(utc(2026, 3, 23, 0, 30))  # 8 days left
    assert reviews() == []
    tick_at(utc(2026, 3, 24, 0, 30))  # 7 days left
    assert summary(reviews(), "rule", "subject", "recipient", "period", "status") == [
        ("cycle_review_due", f"{t}-q1", "carla", "review", "sent"),
        ("cycle_review_due", f"{t}-q1", "gina", "review", "sent"),
        ("cycle_review_due", f"{t}-q1", "lena", "review", "sent")]
    tick_at(utc(2026, 3, 25, 0, 30))
    assert len(reviews()) == 3
    (review,) = world.receiver.bodies(paths["lena"])
    assert review["data"]["days_left"] == 7 and review["data"]["teams"] == ["growth", "platform"]
    assert world.receiver.to(paths["sofia"]) == []  # the lead of a team without objectives in the cycle
