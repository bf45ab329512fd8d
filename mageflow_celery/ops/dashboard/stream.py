"""``/events``: the progress of the swarms on a page, as server-sent events.

``GET /events?ids=<id>,<id>,...`` reads those swarms' counters every ``poll_interval_s`` (default 0.5 s:
a change shows within a second) in one pipelined round trip, and sends an ``event: progress`` whose data
is the swarm's live fields (JSON) each time they changed; a comment line every 15 s keeps proxies from
closing an idle stream. The browser's ``EventSource`` reconnects by itself.

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ...errors import StateStoreError
from .settings import settings_of
from .views import MAX_FOLLOWED, live_progress

#: Seconds between two keep-alive comments.
KEEPALIVE_S = 15.0
_ID = re.compile(r"^[A-Za-z0-9_.~:-]{1,200}$")


def followed_ids(raw: str) -> list[str]:
    """The swarm ids of ``?ids=`` that look like ids, at most :data:`MAX_FOLLOWED`, duplicates dropped."""
    ids = [part for part in (p.strip() for p in raw.split(",")) if _ID.match(part)]
    return list(dict.fromkeys(ids))[:MAX_FOLLOWED]


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def events(request: Request) -> Response:
    settings = settings_of(request)
    ids = followed_ids(request.query_params.get("ids", ""))

    async def stream() -> AsyncIterator[str]:
        sent: dict[str, dict[str, Any]] = {}
        yield "retry: 1000\n\n"
        quiet_since = time.monotonic()
        while not await request.is_disconnected():
            try:
                now = await anyio.to_thread.run_sync(live_progress, settings.app, ids) if ids else {}
            except StateStoreError:
                yield _sse("unavailable", {"message": "The swarm state Redis is unavailable."})
                now = {}
            for swarm_id, fields in now.items():
                if sent.get(swarm_id) != fields:
                    sent[swarm_id] = fields
                    quiet_since = time.monotonic()
                    yield _sse("progress", fields)
            if time.monotonic() - quiet_since >= KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            await anyio.sleep(settings.poll_interval_s)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
