"""Every Redis key name used by mageflow_celery, in one place.

Key schema (``<p>`` is the configured key prefix, default ``mageflow``; ``{<id>}`` is the swarm id as a
Redis Cluster hash tag, so all keys of one swarm live in one slot):

============================  =====  ===================================================================
key                           type   content
============================  =====  ===================================================================
``<p>:swarm:{<id>}:meta``     hash   swarm state, closed/paused flags, limits, counters per member state,
                                     timestamps, encoded run context (``ctx``) and finalizer (``def``)
``<p>:swarm:{<id>}:members``  hash   member index -> encoded member signature (run kwargs merged in)
``<p>:swarm:{<id>}:queue``    list   member indices queued and waiting for a token (FIFO)
``<p>:swarm:{<id>}:mstate``   hash   member index -> state letter q/d/r/s/f/c (absent = registered)
``<p>:swarm:{<id>}:tokens``   zset   member index -> deadline (dispatched: dispatch deadline; running:
                                     lease deadline); holds a sentinel ``_`` so it never disappears
``<p>:swarm:{<id>}:results``  hash   member index -> encoded result of a succeeded member
``<p>:swarm:{<id>}:errors``   hash   member index -> JSON {task_id, index, type, message} of a failed
                                     member (at most ``summary_max_failures`` of them)
``<p>:swarms``                zset   global index of active swarms (id -> created_at), written outside
                                     the scripts; readers drop stale entries
``<p>:reaper``                str    lock held by the worker whose reaper is active
============================  =====  ===================================================================

TTL: every key of an unfinished swarm carries ``idle_ttl_s`` (refreshed by state changes); a finished
swarm's keys expire ``result_ttl_s`` after it finished.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Default key prefix.
DEFAULT_PREFIX = "mageflow"

#: Separator between the swarm id and the member index in a member's task id.
MEMBER_SEP = "~"


@dataclass(frozen=True, slots=True)
class SwarmKeys:
    """Key names of one swarm."""

    prefix: str
    swarm_id: str

    @property
    def _base(self) -> str:
        return f"{self.prefix}:swarm:{{{self.swarm_id}}}"

    @property
    def meta(self) -> str:
        return f"{self._base}:meta"

    @property
    def members(self) -> str:
        return f"{self._base}:members"

    @property
    def queue(self) -> str:
        return f"{self._base}:queue"

    @property
    def mstate(self) -> str:
        return f"{self._base}:mstate"

    @property
    def tokens(self) -> str:
        return f"{self._base}:tokens"

    @property
    def results(self) -> str:
        return f"{self._base}:results"

    @property
    def errors(self) -> str:
        return f"{self._base}:errors"

    def all(self) -> list[str]:
        """All keys of the swarm, in the order every script receives them in ``KEYS``."""
        return [self.meta, self.members, self.queue, self.mstate, self.tokens, self.results, self.errors]


def index_key(prefix: str) -> str:
    """The global index of active swarms (a zset, id -> created_at)."""
    return f"{prefix}:swarms"


def reaper_lock_key(prefix: str) -> str:
    """The lock that elects one active reaper per prefix."""
    return f"{prefix}:reaper"


def member_task_id(swarm_id: str, index: int) -> str:
    """Deterministic Celery task id of member ``index`` of ``swarm_id``."""
    return f"{swarm_id}{MEMBER_SEP}{index}"


def step_task_id(swarm_id: str, index: int, step: int) -> str:
    """Task id of a non-final step of a chain member (the final step has the member id)."""
    return f"{swarm_id}{MEMBER_SEP}{index}{MEMBER_SEP}{step}"


def callback_task_id(swarm_id: str, kind: str, position: int) -> str:
    """Deterministic task id of a success (``kind='s'``) or error (``kind='e'``) callback."""
    return f"{swarm_id}{MEMBER_SEP}{kind}{position}"


def parse_member_task_id(task_id: str | None) -> tuple[str, int, bool] | None:
    """Return ``(swarm_id, index, is_final_step)`` for a member task id, else ``None``."""
    if not task_id or MEMBER_SEP not in task_id:
        return None
    head, _, tail = task_id.rpartition(MEMBER_SEP)
    if not tail.isdigit() or not head:
        return None
    if MEMBER_SEP in head:
        swarm_id, _, idx = head.rpartition(MEMBER_SEP)
        if idx.isdigit() and swarm_id:
            return swarm_id, int(idx), False
    return head, int(tail), True
