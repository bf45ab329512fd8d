"""The dashboard's actions: ``POST /api/swarms/{id}/{pause|resume|cancel|close}`` and
``POST /api/swarms/{id}/resize`` (JSON ``{"max_concurrency": n}``).

Each needs the bearer token (:mod:`.auth`) and calls the same :class:`~mageflow_celery.SwarmResult` method
as the ``celery swarm`` command; the answer is JSON ``{"swarm_id", "action", "changed", "progress"}``.
``cancel`` takes an optional JSON ``{"terminate": true}``. A read-only dashboard has none of these routes.

Status codes: 200 done (``changed`` false: nothing to change), 400 a bad body, 401 no token given,
403 a wrong token or none configured, 404 no such swarm, 503 the state Redis or the broker is unreachable.

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import json
from typing import Any

from kombu.exceptions import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ...client.result import SwarmResult
from ...errors import StateStoreError, SwarmNotFoundError
from .auth import refusal
from .settings import settings_of
from .views import live

ACTIONS = ("pause", "resume", "cancel", "close", "resize")


class BadRequest(ValueError):
    """Raised when an action's body is not what it takes."""


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest("the body is not JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _call(result: SwarmResult, action: str, body: dict[str, Any]) -> bool:
    if action == "pause":
        return result.pause()
    if action == "resume":
        return result.resume()
    if action == "close":
        return result.close_swarm()
    if action == "cancel":
        return result.cancel(terminate=body.get("terminate") is True)
    n = body.get("max_concurrency")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise BadRequest('resize takes {"max_concurrency": n} with an int n >= 1')
    return result.set_max_concurrency(n)


def _run(result: SwarmResult, action: str, body: dict[str, Any]) -> dict[str, Any]:
    changed = _call(result, action, body)
    return {"swarm_id": result.id, "action": action, "changed": changed, "progress": live(result.progress())}


async def act(request: Request) -> JSONResponse:
    settings = settings_of(request)
    refused = refusal(request, settings.token)
    if refused is not None:
        return refused
    swarm_id, action = request.path_params["swarm_id"], request.path_params["action"]
    if action not in ACTIONS:
        return JSONResponse({"error": f"unknown action {action!r}; one of {', '.join(ACTIONS)}"}, status_code=404)
    try:
        body = await _body(request)
        outcome = await run_in_threadpool(_run, SwarmResult(swarm_id, app=settings.app), action, body)
    except BadRequest as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except SwarmNotFoundError:
        return JSONResponse({"error": f"no swarm with id {swarm_id!r} (never created, or expired)"}, status_code=404)
    except (StateStoreError, OperationalError):
        return JSONResponse({"error": "the swarm state Redis or the broker is unavailable"}, status_code=503)
    return JSONResponse(outcome)


routes = [Route("/api/swarms/{swarm_id}/{action}", act, methods=["POST"], name="swarm_action")]
