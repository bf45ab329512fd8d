"""O1 against the dashboard served by a real uvicorn: the ``/events`` stream and the HTTP API with httpx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from celery import Celery
from dashkit import TOKEN, served

from mageflow_celery import SwarmConfig, swarm

pytestmark = [pytest.mark.redis]


def _progress_events(lines: Iterator[str], until: Any, deadline_s: float = 5.0) -> list[dict[str, Any]]:
    """Read ``event: progress`` payloads until ``until(payloads)`` holds (or fail at the deadline)."""
    got: list[dict[str, Any]] = []
    event = ""
    deadline = time.monotonic() + deadline_s
    for line in lines:
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: ") and event == "progress":
            got.append(json.loads(line[len("data: ") :]))
            if until(got):
                return got
        assert time.monotonic() < deadline, f"no matching progress event within {deadline_s}s: {got}"
    raise AssertionError(f"the stream ended: {got}")


def test_events_stream_the_progress_of_the_followed_swarms_as_it_changes(mageflow_app: Celery) -> None:
    # Given two running swarms, a dashboard, and a client following one of them (and an id that is not one)
    tasks = [mageflow_app.signature("t", args=(i,)).set(queue="nowhere") for i in range(3)]
    followed = swarm(tasks=tasks, task_name="followed", config=SwarmConfig(max_concurrency=1), app=mageflow_app)
    other = swarm(tasks=list(tasks), task_name="other", app=mageflow_app)
    res, other_res = followed.apply_async(), other.apply_async()
    with served(mageflow_app) as base, httpx.Client(base_url=base, timeout=10) as client:
        with client.stream("GET", "/events", params={"ids": f"{res.id},gone,{res.id}"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            # When the stream opens, then it sends the swarm's progress at once
            first = _progress_events(lines, lambda got: got)
            assert first[0]["swarm_id"] == res.id
            assert (first[0]["state"], first[0]["running"], first[0]["queued"]) == ("running", 1, 2)

            # When the swarm is paused, then the change arrives (the stream reads every 0.5 s)
            assert res.pause()
            changed = _progress_events(lines, lambda got: got[-1]["state"] == "paused")
            # And only the followed swarm is streamed, once per change
            assert {e["swarm_id"] for e in first + changed} == {res.id}
    assert other_res.progress().state == "running"


def test_the_http_api_refuses_actions_without_the_token_and_a_read_only_server_has_none(
    mageflow_app: Celery,
) -> None:
    tasks = [mageflow_app.signature("t", args=(i,)).set(queue="nowhere") for i in range(2)]
    res = swarm(tasks=tasks, task_name="api", app=mageflow_app).apply_async()
    with served(mageflow_app) as base:
        no_token = httpx.post(f"{base}/api/swarms/{res.id}/cancel")
        wrong = httpx.post(f"{base}/api/swarms/{res.id}/cancel", headers={"Authorization": "Bearer nope"})
        assert (no_token.status_code, wrong.status_code) == (401, 403)
        assert res.progress().state == "running"
        ok = httpx.post(f"{base}/api/swarms/{res.id}/pause", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and res.progress().paused
    with served(mageflow_app, token=None, read_only=True) as base:
        for action in ("pause", "resume", "cancel", "close", "resize"):
            answer = httpx.post(f"{base}/api/swarms/{res.id}/{action}", headers={"Authorization": f"Bearer {TOKEN}"})
            assert answer.status_code in (404, 405), action
        assert httpx.get(f"{base}/").status_code == 200
    assert res.progress().state == "paused"
