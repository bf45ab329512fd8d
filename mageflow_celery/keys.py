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
``<p>:swarm:{<id>}:mstate``   hash   member index -> state letter q/s/f/c (absent = registered), or for a
                                     member holding a token ``d|`` or ``r|`` and its owner record
                                     ``epoch|step|token|flags|t0|grant``: the publish epoch, the step that
                                     holds it (or may take it), the receiving delivery's lease token
                                     (empty while dispatched), flags (``p`` publish failed, ``u`` a
                                     duplicate copy was dropped), when it was dispatched and the pool
                                     grant it holds (one write per transition, one read per receipt)
``<p>:swarm:{<id>}:tokens``   zset   member index -> deadline (dispatched: dispatch deadline; running:
                                     lease deadline); holds a sentinel ``_`` so it never disappears
``<p>:swarm:{<id>}:results``  hash   member index -> encoded result of a succeeded member
``<p>:swarm:{<id>}:errors``   hash   member index -> JSON {task_id, index, exc_type, message} of a failed
                                     member (at most ``summary_max_failures`` of them)
``<p>:swarm:{<id>}:succeeded`` zset  index -> index of every member that succeeded (``failed``,
``<p>:swarm:{<id>}:failed``         ``cancelled`` likewise): members(state=...) pages through them
``<p>:swarm:{<id>}:cancelled``
``<p>:swarm:{<id>}:registered`` zset index -> index of members added with ``add_task`` and not run yet
                                     (the initial members are registered while the swarm is pending)
``<p>:swarm:{<id>}:children`` set    ids of the nested swarms started as members of this swarm
``<p>:swarms``                zset   global index of unfinished swarms (id -> created_at), written outside
                                     the scripts; readers drop stale entries
``<p>:finished``              zset   global index of finished swarms (id -> finished_at), moved there
                                     once by their finalization; readers drop expired entries
``<p>:due``                   zset   swarm id -> the next time the reaper must look at it (a token's
                                     deadline, a finalization claim's, a rate's next slot): entries are
                                     added by client-side admissions ("soon") and failed publishes, moved
                                     by the reaper to each swarm's real next deadline, dropped when none
``<p>:reaper``                str    lock held by the worker whose reaper is active
``<p>:pools``                 set    names of the pools used under this prefix
``<p>:pool:{pool:<n>}:meta``  hash   pool ``n``: limit, rate_int, tat (the rate's next slot), seq,
                                     passer, pgen (token passing, docs/pools.md)
``<p>:pool:{pool:<n>}:holders`` hash grant id -> ``swarm|granted at``: the pool's tokens in use
``<p>:pool:{pool:<n>}:held``  hash   swarm id -> tokens of ``:holders`` it holds
``<p>:pool:{pool:<n>}:ring``  list   swarms waiting for tokens, round-robin order (``:wants``,
                                     ``:weights``, ``:credit`` hashes: their demand, weight, turn)
``<p>:stats``                 hash   counters for the metrics: members admitted / succeeded / failed /
                                     cancelled and the hand-off latency histogram (``hl:<le>``, ``hl_sum``)
                                     of finished swarms, folded in once by each finalization; reaper
                                     actions (``reaper_<action>``)
============================  =====  ===================================================================

TTL: every key of an unfinished swarm carries ``idle_ttl_s`` (refreshed by state changes); a finished
swarm's keys expire ``result_ttl_s`` after it finished.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

#: Default key prefix.
DEFAULT_PREFIX = "mageflow"

#: Separator between the parts of a member's task id.
MEMBER_SEP = "~"
#: Step number of a member's own task id: a plain member, or the last step of a chain member (also in _lib.lua).
FINAL_STEP = 1 << 30


@dataclass(frozen=True, slots=True)
class MemberRef:
    """What a member task id says: its swarm, its index, and which step of the member it is."""

    swarm_id: str
    index: int
    #: ``FINAL_STEP`` for the member id itself (a plain member, a chain member's last step), else the
    #: 0-based position of a chain member's earlier step.
    step: int

    @property
    def final(self) -> bool:
        return self.step == FINAL_STEP


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

    def finished(self, state: str) -> str:
        """Zset of the members that ended in ``state`` (``succeeded``, ``failed``, ``cancelled``), by index."""
        return f"{self._base}:{state}"

    @property
    def registered(self) -> str:
        return f"{self._base}:registered"

    @property
    def children(self) -> str:
        return f"{self._base}:children"

    def all(self) -> list[str]:
        """All keys of the swarm, in the order every script receives them in ``KEYS``."""
        return [
            self.meta,
            self.members,
            self.queue,
            self.mstate,
            self.tokens,
            self.results,
            self.errors,
            self.finished("succeeded"),
            self.finished("failed"),
            self.finished("cancelled"),
            self.registered,
            self.children,
        ]


@dataclass(frozen=True, slots=True)
class PoolKeys:
    """Key names of one pool (all share the pool's own hash tag, so a pool script touches one slot)."""

    prefix: str
    name: str

    @property
    def _base(self) -> str:
        return f"{self.prefix}:pool:{{pool:{self.name}}}"

    def all(self) -> list[str]:
        """meta, holders, ring, wants, weights, credit, held: the order every pool script receives them in."""
        parts = ("meta", "holders", "ring", "wants", "weights", "credit", "held")
        return [f"{self._base}:{part}" for part in parts]


def pools_key(prefix: str) -> str:
    """The set of pool names used under this prefix (written outside the scripts)."""
    return f"{prefix}:pools"


def pool_due_member(name: str) -> str:
    """The due index's member for a pool whose rate holds a token back."""
    return f"pool:{name}"


def index_key(prefix: str) -> str:
    """The global index of unfinished swarms (a zset, id -> created_at)."""
    return f"{prefix}:swarms"


def finished_index_key(prefix: str) -> str:
    """The global index of finished swarms whose state is still kept (a zset, id -> finished_at)."""
    return f"{prefix}:finished"


def due_key(prefix: str) -> str:
    """The due index: a zset of swarm ids -> the next time the reaper must look at them."""
    return f"{prefix}:due"


def stats_key(prefix: str) -> str:
    """The key prefix's statistics hash (counters folded in by finished swarms and the reaper; metrics)."""
    return f"{prefix}:stats"


def reaper_lock_key(prefix: str) -> str:
    """The lock that elects one active reaper per prefix."""
    return f"{prefix}:reaper"


def _check(swarm_id: str, part: str) -> str:
    return f"{zlib.crc32(f'{swarm_id}{MEMBER_SEP}{part}'.encode()) & 0xFFFFFFFF:08x}"


def member_task_id(swarm_id: str, index: int) -> str:
    """Deterministic Celery task id of member ``index`` of ``swarm_id``: ``<swarm id>~<index>~<check>``.

    The check (8 hex digits of a CRC-32 of the rest) makes a member id unambiguous: a task id that
    merely contains ``~`` is never taken for a member.
    """
    return f"{swarm_id}{MEMBER_SEP}{index}{MEMBER_SEP}{_check(swarm_id, str(index))}"


def step_task_id(swarm_id: str, index: int, step: int) -> str:
    """Task id of step ``step`` (0-based) of a chain member, except its last step (which has the member id)."""
    part = f"{index}.{step}"
    return f"{swarm_id}{MEMBER_SEP}{part}{MEMBER_SEP}{_check(swarm_id, part)}"


def callback_task_id(swarm_id: str, kind: str, position: int) -> str:
    """Deterministic task id of a success (``kind='s'``) or error (``kind='e'``) callback."""
    return f"{swarm_id}{MEMBER_SEP}{kind}{position}"


def parse_member_task_id(task_id: str | None) -> MemberRef | None:
    """What a member task id says, or ``None`` for any other task id (the check must match)."""
    if not task_id or task_id.count(MEMBER_SEP) < 2:
        return None
    head, _, check = task_id.rpartition(MEMBER_SEP)
    swarm_id, _, part = head.rpartition(MEMBER_SEP)
    if not swarm_id or len(check) != 8 or _check(swarm_id, part) != check:
        return None
    index, dot, step = part.partition(".")
    if not index.isdigit() or (dot and not step.isdigit()):
        return None
    return MemberRef(swarm_id, int(index), int(step) if dot else FINAL_STEP)
