"""A nightly batch under celery beat: every night at 02:00 a new swarm exports every account, 4 at a
time, then a report is built from all the exports.

``BEAT_NIGHTLY_EVERY_S=30`` replaces the crontab with a 30-second interval, to watch real beat fire.
"""

from __future__ import annotations

import os
from typing import Any

from celery.schedules import crontab, schedule

from examples._local import make_app
from mageflow_celery import ReturnValue, SwarmConfig, swarm

app = make_app("beat_nightly")

ACCOUNTS = [101, 102, 103, 104, 105, 106, 107, 108, 109, 110]


@app.task(name="export-account", shared=False)
def export_account(account_id: int, destination: str = "s3://exports") -> dict[str, Any]:
    """Stands for exporting one account's data; returns where it went and how many rows."""
    return {"account": account_id, "rows": account_id % 7 * 100 + 3, "path": f"{destination}/{account_id}.parquet"}


@app.task(name="nightly-report", shared=False)
def nightly_report(exports: ReturnValue[list[dict[str, Any]]]) -> str:
    """Success callback: receives every export, in account order."""
    return f"nightly export: {len(exports)} accounts, {sum(e['rows'] for e in exports)} rows"


nightly_batch = swarm(
    tasks=[export_account.s(account_id) for account_id in ACCOUNTS],
    success_callbacks=[nightly_report.s()],
    config=SwarmConfig(max_concurrency=4),
    is_swarm_closed=True,
    task_name="nightly-batch",
    app=app,
)

every_s = os.environ.get("BEAT_NIGHTLY_EVERY_S")
when = schedule(float(every_s)) if every_s else crontab(hour=2, minute=0)
# The entry's task is "mageflow.swarm" (registered by install); each firing creates and starts a new swarm.
app.add_periodic_task(when, nightly_batch, name="nightly-batch")
