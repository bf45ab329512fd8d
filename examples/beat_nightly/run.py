"""Simulate one beat firing of the nightly batch and wait for its swarm: ``python -m examples.beat_nightly.run``.

Celery beat itself only publishes the entry's message; this sends it exactly the way beat does
(``Scheduler.apply_async``), so the run does not wait until 02:00.
"""

from __future__ import annotations

from typing import Any

from celery.beat import ScheduleEntry, Scheduler

from examples._local import callback_result, local_stack
from examples.beat_nightly.tasks import app
from mageflow_celery import SwarmResult


def fire(entry_name: str = "nightly-batch") -> str:
    """Send one firing of a beat entry, as celery beat does; return the id of the swarm it started."""
    entry = ScheduleEntry(name=entry_name, app=app, **app.conf.beat_schedule[entry_name])
    starter = Scheduler(app, lazy=True).apply_async(entry, advance=False)
    return str(starter.get(timeout=30))  # the "mageflow.swarm" task returns the new swarm's id


def main() -> dict[str, Any]:
    with local_stack(app):
        conf = app.conf.beat_schedule["nightly-batch"]
        print(f"beat entry 'nightly-batch': task {conf['task']!r}, schedule {conf['schedule']}")
        swarm_id = fire()
        exports = SwarmResult(swarm_id, app=app).get(timeout=60)
        report = callback_result(app, swarm_id)
        print(f"firing started swarm {swarm_id}: {len(exports)} exports, e.g. {exports[0]['path']}")
        print(f"callback: {report}")
        return {"swarm_id": swarm_id, "exports": exports, "report": report}


if __name__ == "__main__":
    main()
