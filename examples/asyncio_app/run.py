"""The seed guide's async flows in plain asyncio: ``python -m examples.asyncio_app.run``.

Every call of ``mageflow_celery.aio`` runs the synchronous API in a worker thread, so Redis and broker
I/O never block the event loop: the two flows below run concurrently on one loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from examples._local import local_stack
from examples.asyncio_app.tasks import NewTaskMessage, ProcessMessage, SwarmMessage, app
from mageflow_celery import SwarmConfig
from mageflow_celery import aio as mageflow


async def concurrency_control() -> dict[str, Any]:
    """Process 20 files with at most 5 at once, watching the swarm's progress while it runs."""
    file_tasks = [await mageflow.sign("process-file", file_path=f"file_{i}.txt", app=app) for i in range(20)]
    swarm = await mageflow.swarm(tasks=file_tasks, config=SwarmConfig(max_concurrency=5), is_swarm_closed=True)
    run = await swarm.aio_run_no_wait(ProcessMessage())
    peak = 0
    while not await run.ready():
        progress = await run.progress()
        peak = max(peak, progress.dispatched + progress.running)
        await asyncio.sleep(0.01)
    return {"swarm_id": run.id, "results": await run.get(timeout=60), "peak_in_flight": peak}


async def adding_tasks() -> list[str]:
    """Start a swarm with one task, add one while it runs, then close it."""
    initial = await mageflow.sign("initial-task", app=app)
    swarm = await mageflow.swarm(tasks=[initial])
    run = await swarm.aio_run_no_wait(SwarmMessage(swarm_data="swarm_data"))
    additional_task = await mageflow.sign("new-task", app=app)
    new_task = await swarm.add_task(additional_task)
    await new_task.aio_run_no_wait(NewTaskMessage(data="hello"))
    await swarm.close_swarm()
    return await run.get(timeout=60)  # type: ignore[no-any-return]


async def both() -> dict[str, Any]:
    files, dynamic = await asyncio.gather(concurrency_control(), adding_tasks())
    return {"files": files, "dynamic": dynamic}


def main() -> dict[str, Any]:
    with local_stack(app):
        out = asyncio.run(both())
    files = out["files"]
    print(f"files:   {len(files['results'])} processed, at most {files['peak_in_flight']} in flight (limit 5)")
    print(f"         first: {files['results'][0]}, last: {files['results'][-1]}")
    print(f"dynamic: {out['dynamic']}")
    return out


if __name__ == "__main__":
    main()
