"""Commands of ``celery swarm`` that steer swarms: ``pause``, ``resume``, ``cancel``, ``close``, ``reap``.

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click
from kombu.exceptions import OperationalError

from ...client.result import SwarmResult
from ...worker.reaper import reap_once
from ..inspect import FINISHED_STATES
from ._group import (
    CANCEL_HELP,
    CLOSE_HELP,
    JSON_HELP,
    PAUSE_HELP,
    REAP_HELP,
    RESIZE_HELP,
    RESUME_HELP,
    TERMINATE_HELP,
    YES_HELP,
    StateUnavailableError,
    _app,
    swarm,
)

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


@swarm.command("resize", help=RESIZE_HELP)
@click.argument("swarm_id")
@click.argument("max_concurrency", type=click.IntRange(min=1))
@click.pass_context
def resize(ctx: click.Context, swarm_id: str, max_concurrency: int) -> None:
    result = SwarmResult(swarm_id, app=_app(ctx))
    if result.set_max_concurrency(max_concurrency):
        p = result.progress()
        click.echo(
            f"Resized swarm {swarm_id}: at most {max_concurrency} at once; {p.running + p.dispatched} hold a token now."
        )
    else:
        click.echo(_unchanged(result, f"at max_concurrency={max_concurrency}"))
