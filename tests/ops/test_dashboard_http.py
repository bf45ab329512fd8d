"""O1 over HTTP (Starlette's test client, a real Redis): the pages, their filters and paging, the actions and
their token, read-only mode, and what a page never shows."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from celery.bin.base import CLIContext
from click.testing import CliRunner
from dashkit import TOKEN
from opskit import Ops
from starlette.testclient import TestClient

from mageflow_celery import SwarmConfig, SwarmResult, set_pool_limit, swarm
from mageflow_celery.dashboard import create_app
from mageflow_celery.ops.cli import swarm as swarm_cli
from mageflow_celery.ops.dashboard import pages
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis]


@pytest.fixture
def client(mageflow_app: Celery) -> Iterator[TestClient]:
    with TestClient(create_app(mageflow_app, token=TOKEN)) as c:
        yield c


def _start(app: Celery, name: str, n: int = 3, **config: Any) -> SwarmResult:
    """A swarm whose members go to a queue no worker consumes: it stays running."""
    tasks = [app.signature("nowhere.task", args=(i,)).set(queue="nowhere") for i in range(n)]
    return swarm(tasks=tasks, task_name=name, config=SwarmConfig(**config), app=app).apply_async()


def _ids(html: str) -> list[str]:
    return re.findall(r'<tr data-swarm-id="([^"]+)"', html)


def test_the_list_shows_unfinished_then_finished_swarms_filtered_by_state_and_name(
    mageflow_app: Celery, client: TestClient
) -> None:
    # Given three running swarms, one of them paused, and a cancelled one
    a, b, c = (_start(mageflow_app, name) for name in ("import-csv", "thumbnails", "import-xml"))
    gone = _start(mageflow_app, "nightly")
    assert b.pause() and gone.cancel()

    # When the list is read, then the unfinished ones come newest first, then the finished one
    page = client.get("/")
    assert page.status_code == 200
    assert _ids(page.text) == [c.id, b.id, a.id, gone.id]
    assert "of 4" in page.text

    # And the state filter and the name search (any case, or the start of an id) narrow it down
    assert _ids(client.get("/?state=paused").text) == [b.id]
    assert _ids(client.get("/?state=running").text) == [c.id, a.id]
    assert _ids(client.get("/?state=active").text) == [c.id, b.id, a.id]
    assert _ids(client.get("/?state=cancelled").text) == [gone.id]
    assert _ids(client.get("/?state=finished").text) == [gone.id]
    assert _ids(client.get("/?q=IMPORT").text) == [c.id, a.id]
    assert _ids(client.get(f"/?q={b.id[:8]}").text) == [b.id]
    assert _ids(client.get("/?q=import&state=paused").text) == []
    assert "No swarm matches" in client.get("/?q=nothing-like-it").text
    assert _ids(client.get("/?state=bogus").text) == [c.id, b.id, a.id, gone.id]  # an unknown filter is ignored


def test_the_list_pages_through_both_indexes(
    mageflow_app: Celery, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given pages of two rows, three running swarms and a cancelled one
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    a, b, c = (_start(mageflow_app, f"s{i}", n=1) for i in range(3))
    gone = _start(mageflow_app, "gone", n=1)
    assert gone.cancel()

    # When the pages are followed by their "older" links
    first = client.get("/").text
    second = client.get("/?offset=2").text

    # Then each page holds its rows (the second spans both indexes) and links the next one
    assert _ids(first) == [c.id, b.id]
    assert 'rel="next" href="/?offset=2"' in first and 'rel="prev"' not in first
    assert _ids(second) == [a.id, gone.id]
    assert 'rel="next"' not in second and 'rel="prev" href="/?offset=0"' in second
    # And a searched page pages too, keeping its query in the links
    searched = client.get("/?q=s").text
    assert _ids(searched) == [c.id, b.id] and 'href="/?offset=2&amp;q=s"' in searched
    assert _ids(client.get("/?q=s&offset=2").text) == [a.id]


def test_the_swarm_page_shows_counts_config_members_failures_and_nesting(
    ops: Ops, mageflow_worker: WorkerFactory, client: TestClient
) -> None:
    # Given a finished swarm holding a nested swarm and a member that failed
    mageflow_worker(concurrency=4)
    inner = swarm(tasks=[ops.gated.s(2)], task_name="inner-batch", is_swarm_closed=True, app=ops.app)
    outer = swarm(
        tasks=[inner, ops.gated.s(1, fail=True), ops.gated.s(3)],
        task_name="outer-batch",
        config=SwarmConfig(max_concurrency=3, stop_after_n_failures=5),
        is_swarm_closed=True,
        app=ops.app,
    )
    ops.open_all()
    res = outer.apply_async()
    wait_for(res.ready, timeout_s=30, message="the outer swarm to finish")

    # When its page is read
    page = client.get(f"/swarms/{res.id}")

    # Then it shows its state, counts, configuration and throughput
    assert page.status_code == 200
    text = page.text
    assert "outer-batch" in text and "state-succeeded" in text
    assert '<td data-field="succeeded">2</td>' in text and '<td data-field="failed">1</td>' in text
    assert "<dt>stop_after_n_failures</dt><dd>5</dd>" in text
    assert "<dt>lease_s</dt><dd>60.0</dd>" in text
    assert "members/s" in text
    # And the failure with its exception type and message, in the failures table and the member row
    assert text.count('<td class="exc-type">ValueError</td>') == 1
    assert '<td class="exc-message">member 1 failed on purpose</td>' in text
    assert '<span class="exc-type">ValueError</span>: <span class="exc-message">member 1 failed on purpose' in text
    # And the nested swarm as a link to its page, which links back to its parent
    nested_id = SwarmResult(res.id, app=ops.app).members()[0].task_id
    assert f'<a class="nested" href="/swarms/{nested_id}">inner-batch (swarm)</a>' in text
    inner_page = client.get(f"/swarms/{nested_id}").text
    assert f'id="parent-link" href="/swarms/{res.id}"' in inner_page
    # And the member filter keeps one state
    failed_only = client.get(f"/swarms/{res.id}?state=failed").text
    assert re.findall(r'data-index="(\d+)"', failed_only) == ["1"]


def test_the_members_table_pages_and_an_unknown_swarm_is_a_404(
    mageflow_app: Celery, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    res = _start(mageflow_app, "five", n=5, max_concurrency=1)
    first = client.get(f"/swarms/{res.id}").text
    last = client.get(f"/swarms/{res.id}?offset=4").text
    assert re.findall(r'data-index="(\d+)"', first) == ["0", "1"] and 'href="?offset=2"' in first
    assert re.findall(r'data-index="(\d+)"', last) == ["4"] and 'rel="next"' not in last
    queued = client.get(f"/swarms/{res.id}?state=queued").text
    assert re.findall(r'data-index="(\d+)"', queued) == ["1", "2"]
    missing = client.get("/swarms/no-such-swarm")
    assert missing.status_code == 404 and "never created, or its state expired" in missing.text


def test_actions_need_the_bearer_token_and_change_the_swarm(
    mageflow_app: Celery, mageflow_redis: redis.Redis, client: TestClient
) -> None:
    res = _start(mageflow_app, "steered", n=4, max_concurrency=1)
    url = f"/api/swarms/{res.id}/pause"
    meta = f"mageflow:swarm:{{{res.id}}}:meta"

    # Without a token, with another scheme or a wrong one: refused, and nothing changed
    missing = client.post(url)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert client.post(url, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert client.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.post(url, headers={"Cookie": f"token={TOKEN}"}).status_code == 401  # a cookie is never the token
    assert mageflow_redis.hget(meta, "paused") == b"0"

    # With the token: the pause happens once (the second call changes nothing)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    done = client.post(url, headers=auth)
    assert done.status_code == 200
    assert done.json()["changed"] is True and done.json()["progress"]["state"] == "paused"
    assert mageflow_redis.hget(meta, "paused") == b"1"
    assert client.post(url, headers=auth).json()["changed"] is False
    assert client.post(f"/api/swarms/{res.id}/resume", headers=auth).json()["progress"]["paused"] is False

    # And resize takes a JSON body; a bad one is a 400, an unknown swarm or action a 404
    resize = f"/api/swarms/{res.id}/resize"
    assert client.post(resize, headers=auth, json={"max_concurrency": 0}).status_code == 400
    assert client.post(resize, headers=auth, content=b"not json").status_code == 400
    assert client.post(resize, headers=auth, json={"max_concurrency": 3}).json()["progress"]["max_concurrency"] == 3
    assert mageflow_redis.hget(meta, "limit") == b"3"
    assert client.post("/api/swarms/nope/pause", headers=auth).status_code == 404
    assert client.post(f"/api/swarms/{res.id}/explode", headers=auth).status_code == 404
    assert client.post(f"/api/swarms/{res.id}/close", headers=auth).json()["progress"]["closed"] is True
    assert client.post(f"/api/swarms/{res.id}/cancel", headers=auth).json()["progress"]["state"] == "cancelled"


def test_a_read_only_dashboard_has_no_action_endpoints_nor_buttons(mageflow_app: Celery) -> None:
    res = _start(mageflow_app, "watched")
    with TestClient(create_app(mageflow_app, read_only=True)) as client:
        answer = client.post(f"/api/swarms/{res.id}/pause", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code in (404, 405)
        page = client.get(f"/swarms/{res.id}").text
        assert "data-action=" not in page and 'data-actions="off"' in page
    assert res.progress().paused is False
    with pytest.raises(ValueError):
        create_app(mageflow_app, token=TOKEN, read_only=True)


def test_without_a_token_actions_are_refused_and_the_page_says_so(mageflow_app: Celery) -> None:
    res = _start(mageflow_app, "unguarded")
    with TestClient(create_app(mageflow_app)) as client:
        refused = client.post(f"/api/swarms/{res.id}/pause", headers={"Authorization": "Bearer anything"})
        assert refused.status_code == 403 and "without a token" in refused.json()["error"]
        assert 'id="no-token"' in client.get("/").text
    assert res.progress().paused is False


def test_pages_carry_security_headers_and_never_show_the_redis_url(
    mageflow_app: Celery, mageflow_redis_url: str, client: TestClient
) -> None:
    res = _start(mageflow_app, "private")
    port = mageflow_redis_url.rsplit(":", 1)[1].split("/")[0]
    for path in ("/", f"/swarms/{res.id}", "/pools", "/metrics", "/static/dashboard.js"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"
        assert mageflow_redis_url not in answer.text and f":{port}" not in answer.text, path


def test_the_pools_page_shows_usage_against_limits_and_waiting_swarms(mageflow_app: Celery, client: TestClient) -> None:
    # Given no pool yet, the page says how a swarm joins one
    assert "No shared pool is in use" in client.get("/pools").text

    # Given a pool of 1 token at 10/s that two swarms share, and an unlimited pool (members go to a queue no
    # worker consumes, so the tokens stay held)
    set_pool_limit(mageflow_app, "openai", 1, rate_limit="10/s")
    holder = _start(mageflow_app, "first", n=2, pool="openai")
    waiter = _start(mageflow_app, "second", n=2, pool="openai")
    _start(mageflow_app, "bulk", n=2, pool="s3")

    # When the page is read
    text = client.get("/pools").text

    # Then each pool shows its usage against its limit, its rate and its waiting swarms as links
    assert '<meter min="0" max="1" high="1" value="1">1/1</meter>' in text
    assert '<td class="limit">none</td>' in text and "unlimited" in text and "10/s" in text
    waiting = re.findall(r'<a class="mono" href="/swarms/([^"]+)">', text)
    assert waiting == [holder.id, waiter.id] or waiting == [waiter.id, holder.id]
    assert '<tr data-pool="s3">' in text and '<td class="in-use">2</td>' in text

    # And a pooled swarm's page names its pool
    assert 'id="pool-link">openai</a>' in client.get(f"/swarms/{waiter.id}").text


def test_the_dashboard_command_names_the_extra_when_it_is_missing(
    mageflow_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mageflow_celery.ops.dashboard.serve", None)  # as if uvicorn were missing
    runner = CliRunner()
    out = runner.invoke(swarm_cli, ["dashboard"], obj=CLIContext(app=mageflow_app, no_color=True, workdir=None))
    assert out.exit_code == 1
    assert "pip install 'mageflow-celery[dashboard]'" in out.output
    both = runner.invoke(
        swarm_cli, ["dashboard", "--token", "t", "--read-only"], obj=CLIContext(mageflow_app, True, None)
    )
    assert both.exit_code == 2 and "--read-only takes no --token" in both.output


def test_mounted_under_a_path_in_fastapi_its_links_and_stream_follow_the_mount(mageflow_app: Celery) -> None:
    from fastapi import FastAPI

    res = _start(mageflow_app, "mounted")
    api = FastAPI()
    api.mount("/ops/swarms", create_app(mageflow_app, token=TOKEN))
    with TestClient(api) as client:
        page = client.get("/ops/swarms/").text
        assert f'href="/ops/swarms/swarms/{res.id}"' in page
        assert 'data-base="/ops/swarms"' in page and 'src="/ops/swarms/static/dashboard.js"' in page
        assert client.get("/ops/swarms/static/dashboard.css").status_code == 200
        assert client.get(f"/ops/swarms/swarms/{res.id}").status_code == 200
        done = client.post(f"/ops/swarms/api/swarms/{res.id}/pause", headers={"Authorization": f"Bearer {TOKEN}"})
        assert done.json()["changed"] is True
