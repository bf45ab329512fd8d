"""What one dashboard app holds: the Celery app, the token, the read-only switch, the templates.

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2
from celery import Celery
from starlette.requests import Request
from starlette.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    app: Celery
    token: str | None
    read_only: bool
    #: Seconds between two reads of the progress that ``/events`` streams.
    poll_interval_s: float
    templates: Jinja2Templates


def templates() -> Jinja2Templates:
    """The page templates (package data), HTML-escaped."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    return Jinja2Templates(env=env)


def settings_of(request: Request) -> Settings:
    """The settings of the dashboard serving ``request``."""
    found: Settings = request.app.state.mageflow_dashboard
    return found
