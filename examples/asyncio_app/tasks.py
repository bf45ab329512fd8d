"""Tasks for the asyncio examples: ``async def`` seed-style tasks taking one pydantic message model.

``mf.task`` runs an ``async def`` on the worker process's own event loop (prefork, threads or solo
pools; not gevent/eventlet).
"""

from __future__ import annotations

import asyncio
import hashlib

from pydantic import BaseModel, ConfigDict

from examples._local import make_app
from mageflow_celery import Mageflow

app = make_app("asyncio_app")
mf = Mageflow(app)


class ProcessMessage(BaseModel):
    """The swarm's message for the file swarm (every field optional, as in the seed's ``ProcessMessage()``)."""

    encoding: str = "utf-8"


class FileMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    file_path: str
    encoding: str = "utf-8"


class SwarmMessage(BaseModel):
    """The seed's message for a swarm that grows: only the initial task reads it."""

    swarm_data: str


class NewTaskMessage(BaseModel):
    data: str
    # Ignore extra fields: the swarm's message (``swarm_data``) is merged into this task's kwargs too.
    model_config = ConfigDict(extra="ignore")


@mf.task(name="process-file")
async def process_file(msg: FileMessage) -> str:
    """Pretend to fetch and hash a file (an async HTTP or storage client would be awaited here)."""
    await asyncio.sleep(0.02)
    digest = hashlib.sha256(msg.file_path.encode(msg.encoding)).hexdigest()[:8]
    return f"{msg.file_path}:{digest}"


@mf.task(name="initial-task")
async def initial_task(msg: SwarmMessage) -> str:
    return f"initial task saw {msg.swarm_data}"


@mf.task(name="new-task")
async def new_task(msg: NewTaskMessage) -> str:
    return f"new task got {msg.data}"
