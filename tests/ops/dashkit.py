"""Helpers for the dashboard tests: the dashboard served by a real uvicorn in a thread, on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery

from mageflow_celery.ops.dashboard.serve import server
from mageflow_celery.testing import find_free_port, wait_for

TOKEN = "s3cret-dashboard-token"


@contextmanager
def served(app: Celery, token: str | None = TOKEN, read_only: bool = False) -> Iterator[str]:
    """Serve the dashboard of ``app`` on 127.0.0.1 and yield its base URL; stop it on exit."""
    port = find_free_port()
    srv = server(app, host="127.0.0.1", port=port, token=token, read_only=read_only, log_level="warning")
    thread = threading.Thread(target=srv.run, name="dashboard", daemon=True)
    thread.start()
    try:
        wait_for(lambda: srv.started, timeout_s=20, message="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=20)
