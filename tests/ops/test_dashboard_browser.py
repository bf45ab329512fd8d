"""O1 in a real headless Chromium (Debian's package, driven by Playwright) against a real worker and Redis.

Nothing waits on a clock: Playwright's ``expect`` polls the page until its deadline, and
:func:`~mageflow_celery.testing.wait_for` polls Redis. Screenshots go to ``artifacts/screenshots/``
(git-ignored).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from dashkit import TOKEN, served
from opskit import Ops

from mageflow_celery import Swarm, SwarmConfig, SwarmResult, swarm
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory, in_ci, service_unavailable

try:
    import playwright.sync_api as playwright_api
except ImportError:  # a test dependency: missing, it fails in CI and skips locally, saying so
    if in_ci():
        raise
    pytest.skip(
        "playwright (a test dependency) is not installed: pip install -e . --group test", allow_module_level=True
    )
Browser = playwright_api.Browser
Page = playwright_api.Page
expect = playwright_api.expect

pytestmark = [pytest.mark.redis, pytest.mark.worker]

CHROMIUM = os.environ.get("MAGEFLOW_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
#: Longest a page may take to show a change (the stream reads every 0.5 s; the machine is shared).
SHOWN_WITHIN_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        service_unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    with playwright_api.sync_playwright() as pw:
        found = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield found
        finally:
            found.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1180, "height": 640})
    opened = context.new_page()
    opened.set_default_timeout(SHOWN_WITHIN_MS)
    try:
        yield opened
    finally:
        context.close()


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def _gated(ops: Ops, name: str, indices: range, limit: int, fail: tuple[int, ...] = ()) -> Swarm:
    tasks = [ops.gated.s(i, fail=i in fail) for i in indices]
    config = SwarmConfig(max_concurrency=limit)
    return swarm(tasks=tasks, task_name=name, config=config, is_swarm_closed=True, app=ops.app)


def test_the_list_shows_a_running_swarm_whose_bar_advances_live(
    ops: Ops, mageflow_worker: WorkerFactory, page: Page
) -> None:
    # Given a running swarm of 4 gated members (limit 1), next to a paused and a finished one
    mageflow_worker(concurrency=6)
    finished = _gated(ops, "thumbnails", range(10, 16), 3, fail=(12,)).apply_async()
    ops.open(*range(10, 16))
    wait_for(finished.ready, timeout_s=30, message="the thumbnails swarm to finish")
    paused = _gated(ops, "import-csv", range(20, 26), 2).apply_async()
    ops.wait_started(20, 21)
    assert paused.pause()
    live = _gated(ops, "nightly-export", range(4), 1).apply_async()
    ops.wait_started(0)

    with served(ops.app) as base:
        # When the list is open and members of the running swarm finish
        page.goto(f"{base}/")
        row = page.locator(f'tr[data-swarm-id="{live.id}"]')
        bar = row.locator("progress")
        expect(bar).to_have_js_property("value", 0)
        expect(row.locator('[data-field="donetotal"]')).to_have_text("0/4")
        page.evaluate("window.sameDocument = true")
        ops.open(0)
        # Then its bar advances without a reload (over the event stream)
        expect(row.locator('[data-field="donetotal"]')).to_have_text("1/4")
        expect(bar).to_have_js_property("value", 1)
        ops.open(1)
        expect(row.locator('[data-field="donetotal"]')).to_have_text("2/4")
        expect(bar).to_have_js_property("value", 2)
        expect(page.locator("body")).to_have_attribute("data-live", "on")
        assert page.evaluate("window.sameDocument") is True
        expect(page.locator(f'tr[data-swarm-id="{paused.id}"] [data-field="state"]')).to_have_text("paused")
        expect(page.locator(f'tr[data-swarm-id="{finished.id}"] [data-field="state"]')).to_have_text("succeeded")
        _shot(page, "list.png")
        # And it turns succeeded once the rest finish
        ops.open(2, 3)
        expect(row.locator('[data-field="state"]')).to_have_text("succeeded")
        expect(bar).to_have_js_property("value", 4)
        assert page.evaluate("window.sameDocument") is True


def test_the_swarm_page_lists_a_failed_member_with_its_exception(
    ops: Ops, mageflow_worker: WorkerFactory, page: Page
) -> None:
    # Given a finished swarm whose member 1 failed
    mageflow_worker(concurrency=2)
    ops.open_all()
    res = _gated(ops, "import-rows", range(4), 2, fail=(1,)).apply_async()
    wait_for(res.ready, timeout_s=30, message="the swarm to finish")

    with served(ops.app) as base:
        # When its page is open
        page.goto(f"{base}/swarms/{res.id}")

        # Then the failure shows its exception type and message, in the failures and the members table
        failure = page.locator(".failures tr.failure")
        expect(failure).to_have_count(1)
        expect(failure.locator(".exc-type")).to_have_text("ValueError")
        expect(failure.locator(".exc-message")).to_have_text("member 1 failed on purpose")
        member = page.locator('tr.member[data-index="1"]')
        expect(member.locator(".state")).to_have_text("failed")
        expect(member).to_contain_text("ValueError: member 1 failed on purpose")
        expect(page.locator('.summary [data-field="failed"]')).to_have_text("1")
        _shot(page, "detail.png")


def test_pause_with_the_token_stops_admissions_and_resume_restarts_them(
    ops: Ops, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis, page: Page
) -> None:
    # Given a running swarm (limit 1) whose member 0 executes, and its page open
    mageflow_worker(concurrency=2)
    res = _gated(ops, "steered", range(4), 1).apply_async()
    ops.wait_started(0)
    dialogs: list[str] = []

    def answer(dialog: object) -> None:
        dialogs.append(dialog.type)  # type: ignore[attr-defined]
        dialog.accept(TOKEN if dialog.type == "prompt" else None)  # type: ignore[attr-defined]

    page.on("dialog", answer)
    with served(ops.app) as base:
        page.goto(f"{base}/swarms/{res.id}")

        # When Pause is clicked (the token is asked for once, and kept for the tab)
        page.get_by_role("button", name="Pause").click()
        expect(page.locator("#action-status")).to_have_text("pause: done")
        assert dialogs == ["prompt"]
        assert mageflow_redis.hget(f"mageflow:swarm:{{{res.id}}}:meta", "paused") == b"1"
        expect(page.locator('.summary [data-field="state"]')).to_have_text("paused")

        # Then when the running member ends, nothing new starts
        ops.mark("paused")
        ops.open(0)
        wait_for(lambda: res.progress().succeeded == 1, message="member 0 to end")
        ops.roundtrip()
        assert [e for e in ops.between("paused") if e.startswith("start:")] == []

        # When Resume is clicked, then the next member starts (no second prompt)
        page.get_by_role("button", name="Resume").click()
        expect(page.locator("#action-status")).to_have_text("resume: done")
        ops.wait_started(1)
        assert dialogs == ["prompt"]
        assert mageflow_redis.hget(f"mageflow:swarm:{{{res.id}}}:meta", "paused") == b"0"
        expect(page.locator('.summary [data-field="state"]')).to_have_text("running")


def test_an_action_without_the_right_token_is_refused(ops: Ops, mageflow_worker: WorkerFactory, page: Page) -> None:
    # Given a running swarm and its page
    mageflow_worker(concurrency=2)
    res = _gated(ops, "guarded", range(3), 1).apply_async()
    ops.wait_started(0)
    answers = {"prompt": "not-the-token", "confirm": None}

    def answer(dialog: object) -> None:
        kind = dialog.type  # type: ignore[attr-defined]
        if kind == "confirm" and answers["confirm"] is None:
            dialog.dismiss()  # type: ignore[attr-defined]
        else:
            dialog.accept(answers.get(kind))  # type: ignore[attr-defined]

    page.on("dialog", answer)
    with served(ops.app) as base:
        page.goto(f"{base}/swarms/{res.id}")

        # When Pause is clicked with a wrong token, then it is refused and the token forgotten
        page.get_by_role("button", name="Pause").click()
        expect(page.locator("#action-status")).to_contain_text("pause refused (403)")
        assert page.evaluate("sessionStorage.length") == 0
        # And a cancel that is not confirmed sends nothing
        page.get_by_role("button", name="Cancel").click()
        expect(page.locator("#action-status")).to_contain_text("pause refused")
    assert res.progress().state == "running" and not res.progress().paused

    with served(ops.app, token=None) as base:
        # When the dashboard has no token, then the page says so and every action is refused
        page.goto(f"{base}/swarms/{res.id}")
        expect(page.locator("#no-token")).to_be_visible()
        answers["prompt"] = TOKEN
        page.get_by_role("button", name="Pause").click()
        expect(page.locator("#action-status")).to_contain_text("pause refused (403)")
    assert SwarmResult(res.id, app=ops.app).progress().paused is False


def test_a_read_only_dashboard_shows_no_buttons(ops: Ops, page: Page, mageflow_app: Celery) -> None:
    res = _gated(ops, "watched", range(2), 1).apply_async()
    with served(mageflow_app, token=None, read_only=True) as base:
        page.goto(f"{base}/swarms/{res.id}")
        expect(page.locator(".summary h1")).to_contain_text("watched")
        expect(page.locator("[data-action]")).to_have_count(0)
        expect(page.locator("#no-token")).to_have_count(0)
