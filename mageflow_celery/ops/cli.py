"""The ``celery swarm`` command: list, inspect, watch and steer swarms.

Celery loads it through the ``celery.commands`` entry point, so once mageflow_celery is installed::

    celery -A proj swarm ls [--all] [--json]
    celery -A proj swarm show ID [--json]
    celery -A proj swarm watch ID
    celery -A proj swarm pause ID | resume ID
    celery -A proj swarm cancel ID [--terminate] [--yes] | close ID [--yes]
    celery -A proj swarm reap

Output is built on :mod:`mageflow_celery.ops.inspect` and :class:`~mageflow_celery.SwarmResult`, never on
raw keys. Results go to stdout, messages and errors to stderr. Exit codes: 0 success; 1 the watched
swarm failed or was cancelled, a confirmation was declined, or another mageflow error; 2 bad usage;
3 no swarm has that id; 69 the state Redis (or the broker) is unreachable; 130 ``watch`` interrupted (Ctrl-C).

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
import time
from collections.abc import Mapping
from typing import Any

import click
from celery import Celery, current_app
from kombu.exceptions import OperationalError

from ..client.result import SwarmProgress, SwarmResult
from ..errors import MageflowError, StateStoreError, SwarmNotFoundError
from ..worker.reaper import reap_once
from .inspect import FINISHED_STATES, describe_swarm, list_swarms

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
    filled = width if total and done >= total else (width * done // total if total else 0)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _as_json(p: SwarmProgress) -> dict[str, Any]:
    return {**p.model_dump(mode="json"), "done": p.done}


def _table(rows: list[list[str]], states: list[str], ctx: click.Context) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        if n:
            cells[2] = _style(ctx, cells[2], states[n - 1])
        lines.append("  ".join(cells).rstrip())
    return lines


# -- read commands ----------------------------------------------------------------------------------


@click.group("swarm", cls=SwarmGroup, help=SWARM_HELP)
@click.pass_context
def swarm(ctx: click.Context) -> None:
    """The ``celery swarm`` command group."""


@swarm.command("ls", help=LS_HELP)
@click.option("-a", "--all", "show_all", is_flag=True, help=ALL_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def ls(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    everything = list_swarms(_app(ctx))
    shown = everything if show_all else [p for p in everything if p.state not in FINISHED_STATES]
    if as_json:
        click.echo(json.dumps([_as_json(p) for p in shown], indent=2))
        return
    if not shown:
        hidden = len(everything) - len(shown)
        click.echo("No active swarms." + (f" ({hidden} finished; use --all to list them.)" if hidden else ""), err=True)
        return
    now = time.time()
    header = ["ID", "NAME", "STATE", "DONE/TOTAL", "FAILED", "RUNNING/LIMIT", "AGE"]
    rows = [
        [
            p.swarm_id,
            p.name or "-",
            p.state,
            f"{p.done}/{p.total}",
            str(p.failed),
            f"{p.running + p.dispatched}/{p.max_concurrency}",
            _age(now - p.created_at) if p.created_at else "-",
        ]
        for p in shown
    ]
    for line in _table([header, *rows], [p.state for p in shown], ctx):
        click.echo(line)


def _show_lines(ctx: click.Context, info: Mapping[str, Any]) -> list[str]:
    flags = ["closed" if info["closed"] else "open"]
    if info["paused"] and info["state"] != "paused":
        flags.append("paused")
    state = f"{info['state']} ({', '.join(flags)})"
    pct = f"{100 * info['done'] // info['total']}%" if info["total"] else "-"
    lines = [
        f"swarm:     {info['swarm_id']}",
        f"name:      {info['name'] or '-'}",
        f"state:     {_style(ctx, state, info['state'])}",
        f"progress:  {_bar(info['done'], info['total'])} {info['done']}/{info['total']} done ({pct})",
        f"members:   succeeded {info['succeeded']}, failed {info['failed']}, cancelled {info['cancelled']}, "
        f"running {info['running']}, dispatched {info['dispatched']}, queued {info['queued']}, "
        f"registered {info['registered']}",
        f"limit:     {info['max_concurrency']} at once ({info['running'] + info['dispatched']} holding a token)",
        "threshold: "
        + (
            f"stops after {info['stop_after_n_failures']} failure(s)"
            if info["stop_after_n_failures"]
            else "none (failures do not stop it)"
        ),
        f"created:   {_when(info['created_at'])}",
        f"started:   {_when(info['started_at'])}",
        f"finished:  {_when(info['finished_at'])}",
    ]
    lines += [f"note:      {note}" for note in _notes(info, _command(ctx))]
    failed = info["failed_members"]
    if failed:
        more = " (more failed; only the first ones are kept)" if info["failed_members_truncated"] else ""
        lines.append(f"failed members ({len(failed)} of {info['failed']}){more}:")
        width = max(len(str(rec["index"])) for rec in failed) + 1
        id_width = max(len(rec["task_id"]) for rec in failed)
        for rec in failed:
            index, task_id = f"#{rec['index']}".ljust(width), rec["task_id"].ljust(id_width)
            lines.append(f"  {index}  {task_id}  {rec['type']}: {rec['message']}".rstrip())
    return lines


def _command(ctx: click.Context) -> str:
    """How to call this command again: ``celery -A <app> swarm``."""
    main = getattr(_app(ctx), "main", None)
    return f"celery -A {main} swarm" if main and main != "__main__" else "celery -A <your app> swarm"


def _notes(info: Mapping[str, Any], command: str) -> list[str]:
    """Why an unfinished swarm is not progressing, when it is waiting on the user."""
    state, sid = info["state"], info["swarm_id"]
    if state in FINISHED_STATES:
        return []
    notes = []
    if state == "pending":
        notes.append("not started yet: its members are admitted once the swarm is applied")
    if info["paused"]:
        notes.append(f"paused: no member starts until it is resumed ({command} resume {sid})")
    if info["registered"]:
        notes.append(f"{info['registered']} member(s) added but never run: the swarm cannot finish until they are")
    elif not info["closed"] and state != "pending" and info["done"] == info["total"]:
        notes.append(f"every member finished; the swarm is open: close it to finish ({command} close {sid})")
    return notes


@swarm.command("show", help=SHOW_HELP)
@click.argument("swarm_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def show(ctx: click.Context, swarm_id: str, as_json: bool) -> None:
    info = describe_swarm(_app(ctx), swarm_id)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for line in _show_lines(ctx, info):
        click.echo(line)


def _watch_line(p: SwarmProgress) -> str:
    return (
        f"{p.state:<9} {_bar(p.done, p.total)} {p.done}/{p.total}  ok {p.succeeded}  failed {p.failed}  "
        f"cancelled {p.cancelled}  running {p.running + p.dispatched}/{p.max_concurrency}  queued {p.queued}"
        + (f"  registered {p.registered}" if p.registered else "")
    )


def _outcome(p: SwarmProgress) -> tuple[str, int]:
    if p.state == "succeeded":
        return f"Swarm {p.swarm_id} succeeded: {p.succeeded} succeeded, {p.failed} failed.", 0
    if p.state == "failed":
        return f"Swarm {p.swarm_id} failed: {p.failed} member(s) failed, {p.cancelled} cancelled.", EXIT_UNSUCCESSFUL
    return f"Swarm {p.swarm_id} was cancelled: {p.cancelled} member(s) cancelled.", EXIT_UNSUCCESSFUL


def _follow(result: SwarmResult, first: SwarmProgress, interval: float, tty: bool) -> SwarmProgress:
    """Draw progress lines (redrawn in place on a terminal) until the swarm finishes."""
    p, last = first, ""
    while True:
        line = _watch_line(p)
        if tty:
            click.echo("\r" + line.ljust(len(last)), nl=False)
        elif line != last:
            click.echo(line)
        last = line
        if p.state in FINISHED_STATES:
            return p
        time.sleep(interval)
        p = result.progress()


@swarm.command("watch", help=WATCH_HELP)
@click.argument("swarm_id")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.5, show_default=True, help=INTERVAL_HELP)
@click.pass_context
def watch(ctx: click.Context, swarm_id: str, interval: float) -> None:
    result = SwarmResult(swarm_id, app=_app(ctx))
    tty = sys.stdout.isatty()
    first = result.progress()
    click.echo(f"Watching swarm {swarm_id} (Ctrl-C stops watching, not the swarm).", err=True)
    try:
        p = _follow(result, first, interval, tty)
    except KeyboardInterrupt:
        if tty:
            click.echo()
        click.echo(f"Stopped watching; swarm {swarm_id} goes on.", err=True)
        ctx.exit(EXIT_INTERRUPTED)
    if tty:
        click.echo()
    message, code = _outcome(p)
    click.echo(message)
    ctx.exit(code)


# -- lifecycle commands -----------------------------------------------------------------------------


def _unchanged(result: SwarmResult, wanted: str) -> str:
    p = result.progress()
    if p.state in FINISHED_STATES:
        return f"Swarm {p.swarm_id} is already {p.state}; nothing to do."
    return f"Swarm {p.swarm_id} is already {wanted}; nothing to do."


@swarm.command("pause", help=PAUSE_HELP)
@click.argument("swarm_id")
@click.pass_context
def pause(ctx: click.Context, swarm_id: str) -> None:
    result = SwarmResult(swarm_id, app=_app(ctx))
    if result.pause():
        click.echo(f"Paused swarm {swarm_id}: no member starts until it is resumed; running members finish.")
    else:
        click.echo(_unchanged(result, "paused"))


@swarm.command("resume", help=RESUME_HELP)
@click.argument("swarm_id")
@click.pass_context
def resume(ctx: click.Context, swarm_id: str) -> None:
    result = SwarmResult(swarm_id, app=_app(ctx))
    if result.resume():
        p = result.progress()
        click.echo(f"Resumed swarm {swarm_id}: {p.running + p.dispatched}/{p.max_concurrency} running.")
    else:
        click.echo(_unchanged(result, "running (not paused)"))


def _confirm(question: str, yes: bool) -> None:
    if not yes:
        click.confirm(question, abort=True, err=True)


@swarm.command("cancel", help=CANCEL_HELP)
@click.argument("swarm_id")
@click.option("--terminate", is_flag=True, help=TERMINATE_HELP)
@click.option("-y", "--yes", is_flag=True, help=YES_HELP)
@click.pass_context
def cancel(ctx: click.Context, swarm_id: str, terminate: bool, yes: bool) -> None:
    result = SwarmResult(swarm_id, app=_app(ctx))
    p = result.progress()
    if p.state in FINISHED_STATES:
        click.echo(f"Swarm {swarm_id} is already {p.state}; nothing to do.")
        return
    started = p.running + p.dispatched
    fate = "revoked and terminated" if terminate else "revoked (executing ones finish)"
    _confirm(
        f"Cancel swarm {swarm_id} ({p.name or 'unnamed'})? {p.registered + p.queued} member(s) that did not "
        f"start will never run, {started} started member(s) will be {fate}, and no callback will run.",
        yes,
    )
    try:
        changed = result.cancel(terminate=terminate)
    except OperationalError as exc:
        raise StateUnavailableError(
            f"swarm {swarm_id} is cancelled, but revoking its {started} started member(s) failed because the broker "
            f"is unavailable ({exc}); a worker drops them when it receives them, executing ones finish"
        ) from exc
    if changed:
        click.echo(
            f"Cancelled swarm {swarm_id}: {p.registered + p.queued} member(s) will never run, {started} revoked."
        )
    else:
        click.echo(_unchanged(result, "cancelled"))


@swarm.command("close", help=CLOSE_HELP)
@click.argument("swarm_id")
@click.option("-y", "--yes", is_flag=True, help=YES_HELP)
@click.pass_context
def close(ctx: click.Context, swarm_id: str, yes: bool) -> None:
    result = SwarmResult(swarm_id, app=_app(ctx))
    p = result.progress()
    if p.closed or p.state in FINISHED_STATES:
        click.echo(_unchanged(result, "closed"))
        return
    _confirm(
        f"Close swarm {swarm_id} ({p.name or 'unnamed'})? No member can be added afterwards; "
        "it finishes once its members have.",
        yes,
    )
    if result.close_swarm():
        p = result.progress()
        click.echo(f"Closed swarm {swarm_id}: {p.total - p.done} member(s) left to finish; state {p.state}.")
    else:
        click.echo(_unchanged(result, "closed"))


@swarm.command("reap", help=REAP_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def reap(ctx: click.Context, as_json: bool) -> None:
    counts: dict[str, Any] = dataclasses.asdict(reap_once(_app(ctx)))
    if as_json:
        click.echo(json.dumps(counts, indent=2))
        return
    click.echo("Reaper pass done: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing to report") + ".")


__all__ = ["CommandError", "StateUnavailableError", "SwarmGroup", "UnknownSwarmError", "swarm"]
