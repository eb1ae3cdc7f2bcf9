"""The kanban board page in a real headless Chromium: OKRs made through the goal and
progress services over RPC, carried by the relay and the bus into the reporting
service, shown at GET /board/<tenant>; a check-in moves the card to another column; the
page is readable on a phone.

Dates are relative to the real today (the services' clock): the quarter started 60 days
ago and ends in 30, so a key result checked in at 10 % is OFF_TRACK (expected ~67 %)
whatever the day the test runs, and one checked in at its target is DONE.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

PHONE = {"width": 390, "height": 844}


def _column_of(page, kr_id: str) -> list[str]:
    """The statuses of the KR columns holding the card (one, if the board is right)."""
    return page.eval_on_selector_all(
        f'.column[data-kind="kr"] .card[data-kr-id="{kr_id}"]',
        "cards => cards.map(c => c.closest('.column').dataset.status)")


def test_a_check_in_moves_the_card_and_the_page_fits_a_phone(stack, browser, tmp_path):
    today = datetime.now(timezone.utc).date()
    start, end = today - timedelta(days=60), today - timedelta(days=60) + timedelta(days=89)
    goal = stack.rpc(stack.goal, "carla")
    progress = stack.rpc(stack.progress, "ben")
    cycle = goal.plan_cycle(cadence="QUARTERLY", name="This quarter", start_date=start.isoformat(),
                            end_date=end.isoformat())
    goal.activate_cycle(cycle_id=cycle["cycle_id"])
    objective = goal.create_objective(cycle_id=cycle["cycle_id"], level="TEAM", team_id="growth",
                                      title="Grow the community", owner="carla")
    kr = goal.define_key_result(
        objective_id=objective["objective_id"], kind="INCREASE_TO", start_value=0, target_value=1000,
        title="Community members from 0 to 1,000 — a long title that must wrap on a phone screen",
        owner="ben", due_date=end.isoformat())
    kr_id = kr["key_result_id"]
    progress.record_check_in(key_result_id=kr_id, value=100, confidence=4, comment="slow start")
    stack.caught_up()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    response = page.goto(f"{stack.http}/board/{stack.tenant}")
    assert response.status == 200
    assert "text/html" in response.headers["content-type"]
    board = page.locator(f'section.board[data-tenant="{stack.tenant}"]')
    assert board.is_visible()
    assert _column_of(page, kr_id) == ["OFF_TRACK"]
    card = page.locator(f'.card[data-kr-id="{kr_id}"]')
    assert card.locator(".title").inner_text().startswith("Community members from 0 to 1,000")
    assert card.locator(".owner").inner_text() == "ben"
    assert card.locator(".progress-label").inner_text() == "10%"
    assert page.locator('.column[data-kind="kr"][data-status="OFF_TRACK"] .count').inner_text() == "1"
    page.screenshot(path=str(tmp_path / "board-off-track.png"), full_page=True)

    progress.record_check_in(key_result_id=kr_id, value=1000, confidence=9, comment="hit it")
    stack.caught_up()
    page.reload()
    assert _column_of(page, kr_id) == ["DONE"]
    assert page.locator(f'.card[data-kr-id="{kr_id}"] .progress-label').inner_text() == "100%"
    assert page.locator('.column[data-kind="kr"][data-status="OFF_TRACK"] .card').count() == 0
    assert page.locator('.column[data-kind="kr"][data-status="DONE"] .count').inner_text() == "1"
    page.screenshot(path=str(tmp_path / "board-done.png"), full_page=True)
    context.close()

    phone = browser.new_context(viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True)
    page = phone.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{stack.http}/board/{stack.tenant}")
    shot = tmp_path / "board-phone.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0
    metrics = page.evaluate("""() => ({
        scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
        bodyScrollWidth: document.body.scrollWidth,
        fontSize: parseFloat(getComputedStyle(document.querySelector('.card .title')).fontSize)})""")
    assert metrics["innerWidth"] == PHONE["width"]
    assert metrics["scrollWidth"] <= metrics["innerWidth"], metrics  # no horizontal scrolling
    assert metrics["bodyScrollWidth"] <= metrics["innerWidth"], metrics
    assert metrics["fontSize"] >= 12, metrics  # readable text
    box = page.locator(f'.card[data-kr-id="{kr_id}"]').bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box  # the card fits the screen
    columns = page.eval_on_selector_all('.column[data-kind="kr"]', "cs => cs.map(c => c.getBoundingClientRect().x)")
    assert len(set(round(x) for x in columns)) == 1, columns  # columns stacked, not side by side
    phone.close()
