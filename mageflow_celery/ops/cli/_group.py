"""The ``celery swarm`` command group: errors and exit codes, the app, formatting helpers.

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import click
from celery import Celery, current_app
from kombu.exceptions import OperationalError

from ...client.result import SwarmProgress, progress_bar
from ...errors import MageflowError, StateStoreError, SwarmNotFoundError

#: Exit code: the watched swarm failed or was cancelled (also any other mageflow error).
EXIT_UNSUCCESSFUL = 1
#: Exit code: no swarm has the given id (never created, or expired).
EXIT_NOT_FOUND = 3
#: Exit code: ``watch`` was interrupted with Ctrl-C (the swarm goes on).
EXIT_INTERRUPTED = 130
#: Exit code: the state Redis or the broker cannot be reached (``EX_UNAVAILABLE``, as Celery's own commands).
EXIT_UNAVAILABLE = 69

SWARM_HELP = "List, inspect, watch and steer mageflow swarms (pause, resume, cancel, close)."
LS_HELP = "List active swarms: id, name, state, done/total, failed, running/limit, age (newest first)."
ALL_HELP = "Also list finished swarms whose state is still kept (until their result TTL)."
SHOW_HELP = "Show one swarm in detail, including its failed members and their errors."
JSON_HELP = "Print JSON to stdout instead of a table."
WATCH_HELP = (
    "Draw a live progress bar until the swarm finishes. Exit code 0: it succeeded; 1: it failed or was cancelled."
)
INTERVAL_HELP = "Seconds between two refreshes."
PAUSE_HELP = "Stop admitting members of a swarm; running members finish. Survives worker restarts."
RESUME_HELP = "Admit members of a paused swarm again, refilling up to its concurrency limit at once."
CANCEL_HELP = (
    "Cancel a swarm: members that did not start never run, started ones are revoked, no callback runs. "
    "Asks for confirmation unless --yes."
)
TERMINATE_HELP = "Also terminate members that are executing (needs a pool that supports it, e.g. prefork)."
CLOSE_HELP = (
    "Close a swarm to new members; it finishes (and runs its callbacks) once its members have. "
    "Asks for confirmation unless --yes."
)
YES_HELP = "Do not ask for confirmation."
REAP_HELP = "Run one reaper pass now: recover members whose worker died and finalizations left half-done."
RESIZE_HELP = "Change a swarm's max_concurrency: raising it admits at once, lowering it lets running members finish."
MEMBERS_HELP = "List one page of a swarm's members in member order: index, state, task, task id and error."
STATE_HELP = "Only members in this state."
OFFSET_HELP = "Rows to skip (after the state filter)."
LIMIT_HELP = "Rows to show."

_STATE_COLORS = {"running": "cyan", "paused": "yellow", "succeeded": "green", "failed": "red", "cancelled": "magenta"}
_BAR_WIDTH = 30


class CommandError(click.ClickException):
    """Raised when a ``celery swarm`` command fails; printed as ``Error: ...`` with its exit code."""

    exit_code = EXIT_UNSUCCESSFUL


class UnknownSwarmError(CommandError):
    """Raised when no swarm has the given id."""

    exit_code = EXIT_NOT_FOUND


class StateUnavailableError(CommandError):
    """Raised when the state Redis (or, to revoke or publish, the broker) cannot be reached."""

    exit_code = EXIT_UNAVAILABLE


class SwarmGroup(click.Group):
    """Translates mageflow errors of every sub-command into a clear message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SwarmNotFoundError as exc:
            raise UnknownSwarmError(str(exc)) from exc
        except StateStoreError as exc:
            raise StateUnavailableError(f"the swarm state Redis is unavailable: {exc}") from exc
        except MageflowError as exc:
            raise CommandError(str(exc)) from exc
        except OperationalError as exc:  # revoking and publishing need the broker
            raise StateUnavailableError(f"the broker is unavailable: {exc}") from exc


# -- helpers ----------------------------------------------------------------------------------------


def _app(ctx: click.Context) -> Celery:
    """The app of ``celery -A proj`` (``ctx.obj`` is Celery's ``CLIContext``), else the current app."""
    app: Celery | None = getattr(ctx.obj, "app", None)
    return app if app is not None else current_app


def _style(ctx: click.Context, text: str, state: str) -> str:
    if getattr(ctx.obj, "no_color", False) or state not in _STATE_COLORS:
        return text
    return click.style(text, fg=_STATE_COLORS[state])


def _age(seconds: float) -> str:
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    stamp = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{stamp} ({_age(time.time() - ts)} ago)"


def _bar(done: int, total: int, width: int = _BAR_WIDTH) -> str:
    return progress_bar(done, total, width)


def _as_json(p: SwarmProgress) -> dict[str, Any]:
    return {**p.model_dump(mode="json"), "done": p.done}


def _table(rows: list[list[str]], states: list[str], ctx: click.Context, state_column: int = 2) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        if n:
            cells[state_column] = _style(ctx, cells[state_column], states[n - 1])
        lines.append("  ".join(cells).rstrip())
    return lines


@click.group("swarm", cls=SwarmGroup, help=SWARM_HELP)
@click.pass_context
def swarm(ctx: click.Context) -> None:
    """The ``celery swarm`` command group."""
