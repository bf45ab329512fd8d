"""The swarm dashboard (SPEC O1): a Starlette app that shows swarms and steers them.

Needs the ``dashboard`` extra (``pip install 'mageflow-celery[dashboard]'``: Starlette, uvicorn, Jinja2,
prometheus_client). :func:`create_app` returns the ASGI app; ``celery -A proj swarm dashboard`` serves it.

Modules: :mod:`.app` (the factory, security headers), :mod:`.pages` (HTML pages), :mod:`.views` (what a
page shows, read from Redis; no web types), :mod:`.stream` (``/events``, server-sent events),
:mod:`.actions` (``POST /api/swarms/...``), :mod:`.auth` (the bearer token), :mod:`.serve` (uvicorn).

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
