"""Run two batches, one within the error tolerance and one beyond it:
``python -m examples.batch_tolerance.run``."""

from __future__ import annotations

from typing import Any

from examples._local import callback_result, local_stack, wait_with_progress
from examples.batch_tolerance.tasks import BatchMessage, app, mf
from mageflow_celery import SwarmConfig, SwarmFailedError

RECORDS = 200


def run_batch(message: BatchMessage) -> dict[str, Any]:
    """Process ``RECORDS`` records as one swarm; return what its success or error callback produced."""
    batch_tasks = [mf.sign("process-record", record_id=i) for i in range(RECORDS)]
    completion_report = mf.sign("generate-completion-report", expected=RECORDS)
    failure_alert = mf.sign("send-failure-alert")
    batch_swarm = mf.swarm(
        tasks=batch_tasks,
        success_callbacks=[completion_report],
        error_callbacks=[failure_alert],
        config=SwarmConfig(max_concurrency=20, stop_after_n_failures=50),
        is_swarm_closed=True,
        task_name=message.batch,
    )
    result = batch_swarm.delay(message)
    try:
        wait_with_progress(result, timeout_s=120)
        result.get(timeout=120)
    except SwarmFailedError as exc:
        alert = callback_result(app, result.id, kind="e")
        print(f"{message.batch}: FAILED  {result.progress()}")
        print(f"  error callback: {alert}")
        return {"state": "failed", "alert": alert, "summary": exc.summary}
    report = callback_result(app, result.id)
    print(f"{message.batch}: OK      {result.progress()}")
    print(f"  success callback: {report}")
    return {"state": "succeeded", "report": report}


def main() -> dict[str, dict[str, Any]]:
    with local_stack(app, concurrency=8):
        tolerated = run_batch(BatchMessage(batch="monday-import", corrupt_every=7))  # 29 bad records
        stopped = run_batch(BatchMessage(batch="tuesday-import", corrupt_every=3))  # 67 bad: stops at 50
        return {"tolerated": tolerated, "stopped": stopped}


if __name__ == "__main__":
    main()
