"""The dashboard's app factory: :func:`create_app` (routes, static files, security headers).

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from celery import Celery
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..metrics import registry_for
from . import actions, pages, stream
from .settings import HERE, Settings, settings_of, templates

#: Headers every response carries: no framing, no inline script or style, no referrer leaks.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


async def metrics(request: Request) -> Response:
    """``/metrics``: the swarm metrics (O2) in Prometheus's text format."""
    registry = registry_for(settings_of(request).app)
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def create_app(
    celery_app: Celery, token: str | None = None, read_only: bool = False, *, poll_interval_s: float = 0.5
) -> Starlette:
    """The dashboard as an ASGI app, to serve with uvicorn or mount in FastAPI/Starlette/Django.

    Args:
        celery_app: the app whose swarms it shows (mageflow_celery installed, or installable).
        token: the bearer token that actions need; without one (and not ``read_only``) they are refused.
        read_only: no action routes and no buttons at all.
        poll_interval_s: seconds between two progress reads of ``/events``.

    Raises:
        ValueError: both ``token`` and ``read_only`` are given.

    Example:
        >>> from fastapi import FastAPI
        >>> api = FastAPI()
        >>> api.mount("/swarms-dashboard", create_app(celery_app, token=os.environ["DASHBOARD_TOKEN"]))
    """
    if token and read_only:
        raise ValueError("a read-only dashboard takes no token")
    settings = Settings(celery_app, token or None, read_only, poll_interval_s, templates())
    routes = [
        Route("/", pages.swarm_list, name="swarm_list"),
        Route("/swarms/{swarm_id}", pages.swarm_detail, name="swarm_detail"),
        Route("/pools", pages.pools, name="pools"),
        Route("/events", stream.events, name="events"),
        Route("/metrics", metrics, name="metrics"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    if not read_only:
        routes += actions.routes
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.mageflow_dashboard = settings
    return app
