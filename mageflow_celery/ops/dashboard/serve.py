"""Serve the dashboard with uvicorn (what ``celery -A proj swarm dashboard`` runs).

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import uvicorn
from celery import Celery

from .app import create_app

#: Seconds uvicorn waits for open connections (a browser's event stream stays open) when it stops.
GRACEFUL_SHUTDOWN_S = 2


def server(
    celery_app: Celery,
    *,
    host: str = "127.0.0.1",
    port: int = 5566,
    token: str | None = None,
    read_only: bool = False,
    log_level: str = "info",
) -> uvicorn.Server:
    """A uvicorn server for the dashboard of ``celery_app`` (call ``.run()``, or run it in a thread)."""
    config = uvicorn.Config(
        create_app(celery_app, token=token, read_only=read_only),
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
    )
    return uvicorn.Server(config)
