"""A FastAPI app that starts swarms and reports their progress, with ``mageflow_celery.aio``.

Demo through FastAPI's test client: ``python -m examples.asyncio_app.api``. Served for real (needs
``REDIS_URL`` and a worker, see README.md): ``uvicorn examples.asyncio_app.api:api``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from examples._local import local_stack, poll_progress
from examples.asyncio_app.tasks import ProcessMessage, app
from mageflow_celery import SwarmConfig, SwarmNotFoundError, SwarmResult
from mageflow_celery import aio as mageflow

api = FastAPI(title="mageflow_celery swarms")


class StartSwarm(BaseModel):
    files: list[str] = Field(min_length=1)
    max_concurrency: int = Field(default=5, ge=1)
    encoding: str = "utf-8"


@api.post("/swarms", status_code=202)
async def start_swarm(body: StartSwarm) -> dict[str, str]:
    """Start a closed swarm processing ``files``; return its id at once."""
    tasks = [await mageflow.sign("process-file", file_path=path, app=app) for path in body.files]
    swarm = await mageflow.swarm(
        tasks=tasks, config=SwarmConfig(max_concurrency=body.max_concurrency), is_swarm_closed=True, task_name="upload"
    )
    run = await swarm.aio_run_no_wait(ProcessMessage(encoding=body.encoding))
    return {"swarm_id": run.id}


@api.get("/swarms/{swarm_id}")
async def swarm_progress(swarm_id: str) -> dict[str, Any]:
    """The swarm's progress (state and counts per member state); 404 for an unknown id."""
    try:
        progress = await asyncio.to_thread(SwarmResult(swarm_id, app=app).progress)
    except SwarmNotFoundError:
        raise HTTPException(status_code=404, detail=f"no swarm {swarm_id}") from None
    return progress.model_dump()


def main() -> dict[str, Any]:
    """Start a swarm through the API and poll it until it finishes."""
    from fastapi.testclient import TestClient

    with local_stack(app), TestClient(api) as client:
        started = client.post("/swarms", json={"files": [f"upload_{i}.bin" for i in range(6)], "max_concurrency": 2})
        swarm_id = started.json()["swarm_id"]
        print(f"POST /swarms -> {started.status_code} {started.json()}")
        url = f"/swarms/{swarm_id}"
        final = poll_progress(lambda: client.get(url).json())
        print(f"GET {url} -> {final['state']}: {final['succeeded']}/{final['total']} succeeded")
        return {"swarm_id": swarm_id, "progress": final}


if __name__ == "__main__":
    main()
