"""Read commands of ``celery swarm``: ``ls``, ``show``, ``watch``, ``members``.

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

import click

from ...client.result import MEMBER_STATES, MEMBERS_PAGE_MAX, SwarmProgress, SwarmResult
from ..inspect import FINISHED_STATES, describe_swarm, list_swarms
from ._group import (
    ALL_HELP,
    EXIT_INTERRUPTED,
    EXIT_UNSUCCESSFUL,
    INTERVAL_HELP,
    JSON_HELP,
    LIMIT_HELP,
    LS_HELP,
    MEMBERS_HELP,
    OFFSET_HELP,
    SHOW_HELP,
    STATE_HELP,
    WATCH_HELP,
    _age,
    _app,
    _as_json,
    _bar,
    _style,
    _table,
    _when,
    swarm,
)

# -- read commands ----------------------------------------------------------------------------------


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
            lines.append(f"  {index}  {task_id}  {rec['exc_type']}: {rec['message']}".rstrip())
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


@swarm.command("members", help=MEMBERS_HELP)
@click.argument("swarm_id")
@click.option("--state", type=click.Choice(sorted(MEMBER_STATES.values())), default=None, help=STATE_HELP)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True, help=OFFSET_HELP)
@click.option("--limit", type=click.IntRange(1, MEMBERS_PAGE_MAX), default=100, show_default=True, help=LIMIT_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def members(ctx: click.Context, swarm_id: str, state: str | None, offset: int, limit: int, as_json: bool) -> None:
    rows = SwarmResult(swarm_id, app=_app(ctx)).members(state=state, offset=offset, limit=limit)
    if as_json:
        click.echo(json.dumps([row.model_dump(mode="json") for row in rows], indent=2))
        return
    if not rows:
        click.echo("No members" + (f" in state {state}" if state else "") + " on this page.", err=True)
        return
    header = ["INDEX", "STATE", "NAME", "TASK ID", "ERROR"]
    table = [
        [
            str(row.index),
            row.state,
            row.name,
            row.task_id,
            f"{row.error['exc_type']}: {row.error['message']}" if row.error else "",
        ]
        for row in rows
    ]
    for line in _table([header, *table], [row.state for row in rows], ctx, state_column=1):
        click.echo(line)
