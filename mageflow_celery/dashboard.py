"""The swarm dashboard (SPEC O1): ``create_app(celery_app, token=None, read_only=False)`` returns the ASGI app.

Needs the ``dashboard`` extra: ``pip install 'mageflow-celery[dashboard]'``. The implementation lives in
:mod:`mageflow_celery.ops.dashboard`; this is its public path.

Example:
    >>> from mageflow_celery.dashboard import create_app
    >>> api.mount("/swarms-dashboard", create_app(celery_app, token=os.environ["DASHBOARD_TOKEN"]))
"""

from __future__ import annotations

try:
    from .ops.dashboard import create_app
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"mageflow_celery.dashboard needs the 'dashboard' extra (missing module {exc.name!r}): "
        "pip install 'mageflow-celery[dashboard]'"
    ) from exc

__all__ = ["create_app"]
