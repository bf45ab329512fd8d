"""``celery swarm dashboard``: serve the web dashboard (SPEC O1).

Starlette, uvicorn and Jinja2 come with the ``dashboard`` extra; they are imported only when the command
runs, so the rest of ``celery swarm`` works without them.

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import click

from ._group import CommandError, _app, swarm

DASHBOARD_HELP = (
    "Serve the web dashboard: swarms with live progress, their members and failures, pools, /metrics, and "
    "pause/resume/cancel/close/resize buttons that need the token. Needs mageflow-celery[dashboard]."
)
BIND_HELP = "Address to listen on (default: loopback only)."
PORT_HELP = "Port to listen on."
TOKEN_HELP = "Bearer token the actions need (default: $MAGEFLOW_DASHBOARD_TOKEN). Without one, actions are refused."
READ_ONLY_HELP = "Serve no action endpoints and no buttons."
#: What the command says when the extra is not installed.
MISSING_EXTRA = (
    "the dashboard needs the 'dashboard' extra, which is not installed (missing module {name!r}): "
    "pip install 'mageflow-celery[dashboard]'"
)


@swarm.command("dashboard", help=DASHBOARD_HELP)
@click.option("--bind", default="127.0.0.1", show_default=True, help=BIND_HELP)
@click.option("--port", default=5566, show_default=True, type=click.IntRange(0, 65535), help=PORT_HELP)
@click.option("--token", envvar="MAGEFLOW_DASHBOARD_TOKEN", default=None, help=TOKEN_HELP)
@click.option("--read-only", is_flag=True, help=READ_ONLY_HELP)
@click.pass_context
def dashboard(ctx: click.Context, bind: str, port: int, token: str | None, read_only: bool) -> None:
    if token and read_only:
        raise click.UsageError("--read-only takes no --token (unset MAGEFLOW_DASHBOARD_TOKEN)")
    try:
        # an optional dependency (the `dashboard` extra): imported only when the command runs
        from ..dashboard.serve import server
    except ImportError as exc:
        raise CommandError(MISSING_EXTRA.format(name=exc.name or str(exc))) from exc
    if not token and not read_only:
        click.echo("No --token given: every action is refused (pages and /metrics work).", err=True)
    click.echo(f"Serving the mageflow dashboard on http://{bind}:{port}/ (Ctrl-C stops it).", err=True)
    server(_app(ctx), host=bind, port=port, token=token or None, read_only=read_only).run()
