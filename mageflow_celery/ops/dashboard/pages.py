"""The dashboard's HTML pages: ``/`` (swarms), ``/swarms/{id}`` (one swarm), ``/pools``.

Endpoints are plain functions: Starlette runs them in its thread pool, so their Redis reads never block
the event loop.

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ...client.result import MEMBER_STATES
from ...errors import StateStoreError, SwarmNotFoundError
from .. import inspect
from ..paging import STATE_FILTERS, swarm_page
from .settings import Settings, settings_of
from .views import swarm_view

#: Rows per page of the swarm list and of a swarm's members.
PAGE_SIZE = 50


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query_params.get(name, default))
    except ValueError:
        value = default
    return min(max(value, low), high)


def _render(request: Request, settings: Settings, name: str, context: dict[str, Any], status: int = 200) -> Response:
    base = request.scope.get("root_path", "").rstrip("/")
    common = {
        "base": base,
        "read_only": settings.read_only,
        "has_token": bool(settings.token),
        "now": time.time(),
        "page": name.removesuffix(".html"),
    }
    return settings.templates.TemplateResponse(request, name, {**common, **context}, status_code=status)


def unavailable(request: Request) -> Response:
    """The page shown when the state Redis cannot be read (the error text is not shown: it may name hosts)."""
    settings = settings_of(request)
    return _render(request, settings, "error.html", {"message": "The swarm state Redis is unavailable."}, 503)


def swarm_list(request: Request) -> Response:
    """``/``: swarms, unfinished first then finished within their TTL; ``?state=``, ``?q=``, ``?offset=``."""
    settings = settings_of(request)
    state = request.query_params.get("state") or None
    if state not in (None, *STATE_FILTERS):
        state = None
    q = (request.query_params.get("q") or "").strip()[:200]
    offset = _int(request, "offset", 0, 0, 10**9)
    try:
        page = swarm_page(settings.app, state=state, q=q or None, offset=offset, limit=PAGE_SIZE)
    except StateStoreError:
        return unavailable(request)
    context = {"swarms": page.swarms, "paging": page, "state": state, "q": q, "states": STATE_FILTERS}
    return _render(request, settings, "list.html", context)


def swarm_detail(request: Request) -> Response:
    """``/swarms/{id}``: counts, configuration, members (``?state=``, ``?offset=``), failures, nesting."""
    settings = settings_of(request)
    swarm_id = request.path_params["swarm_id"]
    state = request.query_params.get("state") or None
    if state not in (None, *MEMBER_STATES.values()):
        state = None
    offset = _int(request, "offset", 0, 0, 10**9)
    try:
        view = swarm_view(settings.app, swarm_id, state, offset, PAGE_SIZE)
    except SwarmNotFoundError:
        message = f"No swarm has the id {swarm_id!r} (never created, or its state expired)."
        return _render(request, settings, "error.html", {"message": message}, 404)
    except StateStoreError:
        return unavailable(request)
    context = {"view": view, "p": view.progress, "member_states": list(MEMBER_STATES.values())}
    return _render(request, settings, "detail.html", context)


def pools(request: Request) -> Response:
    """``/pools``: shared pools with their usage against their limit, and the swarms waiting on them."""
    settings = settings_of(request)
    try:
        found = inspect.list_pools(settings.app)
    except StateStoreError:
        return unavailable(request)
    return _render(request, settings, "pools.html", {"pools": found})
