"""``celery swarm pool set|ls``: shared concurrency pools (SPEC §7 F1).

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import dataclasses
import json

import click

from ...client.pools import list_pools, set_pool_limit
from ._group import JSON_HELP, _app, _bar, swarm

POOL_HELP = "Shared concurrency pools: set a pool's limit and rate, list pools with their usage."
POOL_SET_HELP = "Set pool NAME's limit (0: unlimited) and, with --rate, its rate (e.g. 10/s). Raising admits at once."
POOL_LS_HELP = "List pools: tokens in use / limit, rate, holding and waiting swarms."
RATE_HELP = "Admit at most this often across all workers, Celery's syntax (10/s, 100/m); '' removes it."


@swarm.group("pool", help=POOL_HELP)
def pool() -> None:
    """The ``celery swarm pool`` command group."""


@pool.command("set", help=POOL_SET_HELP)
@click.argument("name")
@click.argument("limit", type=click.IntRange(min=0))
@click.option("--rate", default=None, help=RATE_HELP)
@click.pass_context
def pool_set(ctx: click.Context, name: str, limit: int, rate: str | None) -> None:
    try:
        info = set_pool_limit(_app(ctx), name, limit, rate_limit=rate or None)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    shown = info.limit if info.limit is not None else "unlimited"
    click.echo(f"Pool {name}: limit {shown}, rate {info.rate_limit or 'none'}; {info.in_use} token(s) in use.")


@pool.command("ls", help=POOL_LS_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def pool_ls(ctx: click.Context, as_json: bool) -> None:
    pools = list_pools(_app(ctx))
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(p) for p in pools], indent=2))
        return
    if not pools:
        click.echo("No pools.", err=True)
        return
    for p in pools:
        usage = f"{_bar(p.in_use, p.limit, 20)} {p.in_use}/{p.limit}" if p.limit else f"{p.in_use}/unlimited"
        click.echo(f"{p.name:<20} {usage}  rate {p.rate_limit or 'none'}  waiting {len(p.waiting)}")
        for swarm_id, demand in p.waiting:
            click.echo(f"    waiting: {swarm_id} ({demand} member(s) ready)")
