"""Run the dynamic task queue end to end: ``python -m examples.dynamic_queue.run``."""

from __future__ import annotations

from collections.abc import Iterator

from examples._local import callback_result, local_stack
from examples.dynamic_queue.tasks import InitialMessage, ProcessMessage, app, mf, process_item
from mageflow_celery import SwarmConfig


def data_stream() -> Iterator[str]:
    """Stands for items arriving while the swarm runs (a queue, a webhook, a file being tailed)."""
    yield from ("alpha", "beta", "gamma")


def main() -> dict[str, object]:
    with local_stack(app):
        initial_tasks = [mf.sign("initial-task")]
        notification_task = mf.sign("notify-completion", channel="#data-team")
        queue = mf.swarm(
            tasks=initial_tasks,
            success_callbacks=[notification_task],
            config=SwarmConfig(max_concurrency=10),
            task_name="dynamic-queue",
        )

        # Start the swarm; its message reaches every member, including the ones added later.
        result = queue.delay(InitialMessage(stream="sensor-feed", started_by="ops"))

        # Add tasks as needed. A signature made by mf.sign becomes the member handle itself...
        for item in data_stream():
            new_task = mf.sign("process-item", data=item)
            queue.add_task(new_task)
            new_task.delay(ProcessMessage(priority="high"))
        # ...with a plain Celery signature, use the handle add_task returns...
        member = queue.add_task(process_item.s(data="delta"))
        member.delay(ProcessMessage(priority="low"))
        # ...or register and queue in one step.
        queue.run_in_swarm(mf.sign("process-item", data="epsilon"))
        print(f"while open:   {result.progress()}")

        # Close when done adding: the swarm finishes once every member has.
        queue.close_swarm()
        results = result.get(timeout=60)
        print(f"after close:  {result.progress()}")
        for line in results:
            print(f"  {line}")
        notice = callback_result(app, result.id)
        print(f"notification: {notice}")
        return {"swarm_id": result.id, "results": results, "notice": notice}


if __name__ == "__main__":
    main()
