"""A Celery app for running the real ``celery -A ops_cli_app swarm ...`` command in a subprocess."""

from __future__ import annotations

import os

from celery import Celery

from mageflow_celery import install

URL = os.environ["OPS_CLI_REDIS_URL"]

app = Celery("ops-cli", broker=URL, backend=URL, set_as_current=True)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
install(app, redis_url=URL)


@app.task(name="ops_cli.noop")
def noop() -> None:
    return None
