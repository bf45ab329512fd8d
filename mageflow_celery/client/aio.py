"""Coroutine facade with the seed's spellings, for asyncio callers (FastAPI, scripts).

Every call runs the synchronous API in a worker thread (``asyncio.to_thread``), so Redis and broker
I/O never block the event loop, and all logic is shared with the sync API.

Example:
    >>> from mageflow_celery import aio as mageflow
    >>> s = await mageflow.swarm(tasks=[...], config=SwarmConfig(max_concurrency=2), app=app)
    >>> await s.aio_run_no_wait(Message(...))
    >>> new = await s.add_task(await mageflow.sign("process-item", data=1, app=app))
    >>> await new.aio_run_no_wait(ProcessMessage())
    >>> await s.close_swarm()

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from celery import Celery

from .._compat import this_app
from .canvas import Swarm
from .canvas import swarm as _swarm
from .membership import SwarmMember
from .result import SwarmProgress, SwarmResult
from .signing import MageflowSignature
from .signing import sign as _sign


class AioSwarmResult:
    """Awaitable view of a :class:`SwarmResult`."""

    def __init__(self, result: SwarmResult) -> None:
        self.sync = result

    @property
    def id(self) -> str:
        return str(self.sync.id)

    async def get(self, timeout: float | None = None, propagate: bool = True) -> Any:
        return await asyncio.to_thread(self.sync.get, timeout, propagate, disable_sync_subtasks=False)

    async def ready(self) -> bool:
        return await asyncio.to_thread(self.sync.ready)

    async def progress(self) -> SwarmProgress:
        return await asyncio.to_thread(self.sync.progress)

    async def pause(self) -> bool:
        return await asyncio.to_thread(self.sync.pause)

    async def resume(self) -> bool:
        return await asyncio.to_thread(self.sync.resume)

    async def cancel(self, terminate: bool = False) -> bool:
        return await asyncio.to_thread(self.sync.cancel, terminate)

    async def close_swarm(self) -> bool:
        return await asyncio.to_thread(self.sync.close_swarm)


class AioSwarm:
    """Awaitable view of a :class:`Swarm` (``.signature`` is the swarm signature itself)."""

    def __init__(self, signature: Swarm) -> None:
        self.signature = signature

    @property
    def id(self) -> str | None:
        return self.signature.swarm_id or None

    async def aio_run_no_wait(self, message: Any = None, **kwargs: Any) -> AioSwarmResult:
        """Start the swarm with ``message`` (a pydantic model or a dict) as its run kwargs."""
        result = await asyncio.to_thread(self.signature.apply_async, None, message if message is not None else kwargs)
        return AioSwarmResult(result)

    async def apply_async(self, *args: Any, **kwargs: Any) -> AioSwarmResult:
        return AioSwarmResult(await asyncio.to_thread(self.signature.apply_async, *args, **kwargs))

    async def add_task(self, task: Any) -> SwarmMember | MageflowSignature:
        return await asyncio.to_thread(self.signature.add_task, task)

    async def run_in_swarm(self, task: Any, message: Any = None, close_on_max_task: bool = True) -> Any:
        """A member (or a list of them, atomically) registered and queued, with ``message``."""
        return await asyncio.to_thread(self.signature.run_in_swarm, task, message, close_on_max_task)

    async def add_tasks(self, tasks: Any, batch_size: int = 1000, close_on_max_task: bool = True) -> Any:
        """Members registered in one atomic step (a list) or in batches (an iterator)."""
        return await asyncio.to_thread(self.signature.add_tasks, tasks, batch_size, close_on_max_task)

    async def aio_run_tasks_in_swarm(
        self, tasks: Sequence[Any], msgs: Sequence[Any], close_on_max_task: bool = True
    ) -> list[SwarmMember]:
        """``tasks`` registered and queued atomically, each with its own message (lengths must match)."""
        return await self.signature.aio_run_tasks_in_swarm(tasks, msgs, close_on_max_task)

    async def close_swarm(self) -> bool:
        return await asyncio.to_thread(self.signature.close_swarm)

    async def pause(self) -> bool:
        return await asyncio.to_thread(self.signature.pause)

    async def resume(self) -> bool:
        return await asyncio.to_thread(self.signature.resume)

    async def cancel(self, terminate: bool = False) -> bool:
        return await asyncio.to_thread(self.signature.cancel, terminate)


async def swarm(*args: Any, **kwargs: Any) -> AioSwarm:
    """``await mageflow.swarm(...)``: same arguments as :func:`mageflow_celery.swarm`."""
    return AioSwarm(_swarm(*args, **kwargs))


async def sign(task: Any, app: Celery | None = None, **kwargs: Any) -> MageflowSignature:
    """``await mageflow.sign("process-file", file_path="a.txt")``: a signature with bound kwargs."""
    return _sign(app or this_app(), task, **kwargs)


class AioClient:
    """``Mageflow.aio``: the coroutine versions bound to one app."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    async def swarm(self, *args: Any, **kwargs: Any) -> AioSwarm:
        kwargs.setdefault("app", self.app)
        return AioSwarm(_swarm(*args, **kwargs))

    async def sign(self, task: Any, **kwargs: Any) -> MageflowSignature:
        return _sign(self.app, task, **kwargs)
