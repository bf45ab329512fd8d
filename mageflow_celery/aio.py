"""Coroutine facade with the seed's spellings, for asyncio callers (FastAPI, scripts).

Every call runs the synchronous API in a worker thread (``asyncio.to_thread``), so Redis and broker
I/O never block the event loop. The implementation is :mod:`mageflow_celery.client.aio`.

Example:
    >>> from mageflow_celery import aio as mageflow
    >>> s = await mageflow.swarm(tasks=[...], config=SwarmConfig(max_concurrency=2), app=app)
    >>> await s.aio_run_no_wait(Message(...))
    >>> new = await s.add_task(await mageflow.sign("process-item", data=1, app=app))
    >>> await new.aio_run_no_wait(ProcessMessage())
    >>> await s.close_swarm()
"""

from __future__ import annotations

from .client.aio import AioClient, AioSwarm, AioSwarmResult, sign, swarm

__all__ = ["AioClient", "AioSwarm", "AioSwarmResult", "sign", "swarm"]
