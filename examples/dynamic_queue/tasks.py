"""Dynamic task queue (the seed guide's second use case): a swarm starts with one task, items are added
while it runs, and a notification runs once the swarm is closed and every item is processed.

Written with the seed's spellings: a :class:`~mageflow_celery.Mageflow` client, ``mf.task`` functions
taking one pydantic message model, and ``ReturnValue`` for the callback's result list.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict

from examples._local import make_app
from mageflow_celery import Mageflow, ReturnValue

app = make_app("dynamic_queue")
mf = Mageflow(app)


class InitialMessage(BaseModel):
    """The swarm's message: merged into the kwargs of every member when it is published."""

    stream: str
    started_by: str = "scheduler"


class ProcessMessage(BaseModel):
    """The message a member added later is run with (merged over the swarm's message)."""

    priority: str = "normal"


class InitialTask(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the fields of ProcessMessage, if any, are not ours
    stream: str
    started_by: str = "unknown"


class ProcessItem(BaseModel):
    # The member gets the swarm's message + its bound kwargs + its own message, merged into one set of
    # kwargs; ``extra="ignore"`` drops what this task does not declare (here: ``started_by``).
    model_config = ConfigDict(extra="ignore")
    data: str
    stream: str
    priority: str = "normal"


class CompletionNotice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    results: ReturnValue[list[str]]
    channel: str = "#ops"


@mf.task(name="initial-task")
def initial_task(msg: InitialTask) -> str:
    """The swarm's first member: opens the stream."""
    time.sleep(0.2)  # pretend it takes a while, so items are added while the swarm runs
    return f"opened {msg.stream} (by {msg.started_by})"


@mf.task(name="process-item")
def process_item(msg: ProcessItem) -> str:
    """One item from the stream."""
    return f"{msg.data.upper()} from {msg.stream} [{msg.priority}]"


@mf.task(name="notify-completion")
def notify_completion(msg: CompletionNotice) -> str:
    """Success callback: receives every member's result, in the order they were added."""
    return f"{msg.channel}: stream done, {len(msg.results) - 1} item(s) processed"
