"""SwarmStore: the only module that talks to the state Redis.

One typed method per Lua script (each is one atomic state transition), plus plain reads; the records
they return are in :mod:`.records`. Redis errors
are raised as :class:`~mageflow_celery.errors.StateStoreError`.

Layer: ``state`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis
from redis.commands.core import Script

from ..errors import StateStoreError
from ..keys import (
    PoolKeys,
    SwarmKeys,
    due_key,
    finished_index_key,
    index_key,
    pools_key,
    reaper_lock_key,
    stats_key,
)
from .records import (
    Expired,
    Flow,
    MemberRow,
    Owner,
    PoolSettlement,
    PoolView,
    Reaped,
    Receipt,
    Renewal,
    Transition,
    receipt_from,
    renewal_from,
    text,
    transition_from,
)
from .scripts import SOURCES


def receive_args(index: int, step: int, token: str, epoch: int | None, prev_token: str) -> list[Any]:
    """``ARGV`` of ``receive.lua``."""
    return [index, step, token, "" if epoch is None else epoch, prev_token]


#: Where a walk over the index of unfinished swarms stands: the score of the last entry read and how many
#: entries of that score were read (:meth:`SwarmStore.unfinished_page`).
IndexCursor = tuple[float, int]


class SwarmStore:
    """Typed access to the swarm state of one Redis (standalone or Cluster) under one key prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._scripts: dict[str, Script] = {name: client.register_script(src) for name, src in SOURCES.items()}
        #: Script calls made by this store (round trips), for benchmarks.
        self.calls = 0

    def keys(self, swarm_id: str) -> SwarmKeys:
        return SwarmKeys(self.prefix, swarm_id)

    def _run(self, name: str, swarm_id: str, args: Iterable[Any] = ()) -> Any:
        self.calls += 1
        try:
            return self._scripts[name](keys=self.keys(swarm_id).all(), args=list(args))
        except redis.RedisError as exc:
            raise StateStoreError(f"{name} failed for swarm {swarm_id}: {exc}") from exc

    # -- transitions --------------------------------------------------------------------------------

    def create(self, swarm_id: str, meta: dict[str, Any], members: Sequence[bytes]) -> bool:
        """Create the swarm if absent; ``True`` if this call created it."""
        flat: list[Any] = []
        for k, v in meta.items():
            flat += [k, v]
        reply = self._run("create", swarm_id, [len(meta), *flat, *members])
        created = text(reply[0]) == "created"
        if created:
            self._index_add(swarm_id)
        return created

    def start(self, swarm_id: str, ctx: bytes, definition: bytes, want_ctx: bool) -> Transition:
        return transition_from(self._run("start", swarm_id, [ctx, definition, int(want_ctx)]))

    def add(
        self, swarm_id: str, members: Sequence[bytes], run: bool, want_ctx: bool, close_on_max: bool = True
    ) -> Transition:
        """Add members (all or nothing); ``extra`` is ``[first index, closed now]``."""
        mode = "run" if run else "register"
        return transition_from(self._run("add", swarm_id, [mode, int(want_ctx), int(close_on_max), *members]))

    def enqueue(self, swarm_id: str, index: int, member: bytes, want_ctx: bool) -> Transition:
        return transition_from(self._run("enqueue", swarm_id, [index, member, int(want_ctx)]))

    def receive(
        self, swarm_id: str, index: int, step: int, token: str, epoch: int | None = None, prev_token: str = ""
    ) -> str:
        """The start gate for one delivery of a member: ``ok``, ``drop``, ``dup``, ``ignore`` or ``unknown``."""
        return self.receive_full(swarm_id, index, step, token, epoch, prev_token)[0]

    def receive_full(
        self, swarm_id: str, index: int, step: int, token: str, epoch: int | None = None, prev_token: str = ""
    ) -> Receipt:
        """:meth:`receive`, with the pool grants a dropped member gave back and its swarm's pool."""
        return receipt_from(self._run("receive", swarm_id, receive_args(index, step, token, epoch, prev_token)))

    def script_sha(self, name: str) -> str:
        """The SHA1 of a script, loaded into Redis now (for calls made on a connection of their own)."""
        script = self._scripts[name]
        try:
            self.client.script_load(script.script)
        except redis.RedisError as exc:
            raise StateStoreError(f"loading {name} failed: {exc}") from exc
        return str(script.sha)

    def handoff(self, swarm_id: str, index: int, token: str, min_step: int) -> str:
        """The delivery holding ``token`` hands the member on to a message it published (``ok``/``noop``)."""
        return text(self._run("handoff", swarm_id, [index, token, min_step])[0])

    def unpublished(self, swarm_id: str, indices: Sequence[int]) -> int:
        """Flag admitted members whose publish failed, for the reaper to re-publish at once."""
        reply = self._run("unpublished", swarm_id, list(indices))
        return int(reply[1]) if text(reply[0]) == "ok" else 0

    def deadlines(self, swarm_id: str, moves: Sequence[tuple[int, str, float]]) -> int:
        """Move the token deadlines of members still in the given state: ``(index, mstate, deadline)``."""
        flat: list[Any] = []
        for index, mstate, deadline in moves:
            flat += [index, mstate, repr(deadline)]
        reply = self._run("deadline", swarm_id, flat)
        return int(reply[1]) if text(reply[0]) == "ok" else 0

    def report(self, swarm_id: str, outcomes: Sequence[tuple[int, str, bytes]], want_ctx: bool) -> Transition:
        """Record final outcomes ``(index, kind, payload)``; kind is ``s`` (ok), ``f`` (failed) or ``x`` (revoked)."""
        flat: list[Any] = [int(want_ctx)]
        for index, kind, payload in outcomes:
            flat += [index, kind, payload]
        return transition_from(self._run("report", swarm_id, flat))

    def close(self, swarm_id: str) -> Transition:
        return transition_from(self._run("close", swarm_id))

    def pause(self, swarm_id: str) -> Transition:
        return transition_from(self._run("pause", swarm_id))

    def resume(self, swarm_id: str, want_ctx: bool) -> Transition:
        return transition_from(self._run("resume", swarm_id, [int(want_ctx)]))

    def grant(
        self,
        swarm_id: str,
        grants: Sequence[str],
        granted_at: float,
        max_age_s: float,
        want_ctx: bool,
        pass_budget: int = 0,
        generation: int = 0,
    ) -> Transition:
        """Admit members with pool grants made at ``granted_at`` (the pool's clock; none if older than
        ``max_age_s``); the unused ones come back in ``flow.released`` (``unknown``: all of them).

        ``pass_budget``: how many grants its ended members may pass on to its next members without asking the
        pool (0: none), the pool's decision at ``generation`` (``docs/pools.md``)."""
        args = [int(want_ctx), repr(granted_at), repr(max_age_s), pass_budget, generation, *grants]
        reply = self._run("grant", swarm_id, args)
        if text(reply[0]) == "unknown":
            return Transition("unknown", flow=Flow(released=[text(x) for x in reply[1]]))
        return transition_from(reply)

    def stop_passing(self, swarm_id: str, generation: int) -> str:
        """The swarm's members give their pool grants back again instead of passing them on (the pool's
        decision at ``generation``): ``ok``, or ``unknown`` for a swarm that expired (nothing is written)."""
        return text(self._run("nopass", swarm_id, [generation])[0])

    def wake(self, swarm_id: str, want_ctx: bool) -> Transition:
        """Admit what the swarm's rate allows now (its next slot came)."""
        return transition_from(self._run("wake", swarm_id, [int(want_ctx)]))

    def resize(self, swarm_id: str, limit: int, want_ctx: bool) -> Transition:
        """Set ``max_concurrency``; raising it admits at once (``ok``), ``noop`` when nothing changed."""
        return transition_from(self._run("resize", swarm_id, [limit, int(want_ctx)]))

    def cancel(self, swarm_id: str) -> Transition:
        return transition_from(self._run("cancel", swarm_id))

    def finalized(self, swarm_id: str) -> str:
        return text(self._run("finalized", swarm_id)[0])

    def add_child(self, swarm_id: str, child_id: str) -> tuple[str, bool] | None:
        """Record a nested swarm started as a member; ``(state, paused)`` of this swarm, ``None`` if gone."""
        reply = self._run("children", swarm_id, [child_id])
        return (text(reply[1]), int(reply[2]) == 1) if text(reply[0]) == "ok" else None

    def member_rows(self, swarm_id: str, state: str, offset: int, limit: int) -> list[MemberRow] | None:
        """One page of members (``state`` ``""``: any), see ``members.lua``; ``None`` if the swarm is gone."""
        reply = self._run("members", swarm_id, [state, offset, limit])
        if text(reply[0]) != "ok":
            return None
        flat = reply[1]
        return [
            MemberRow(int(text(flat[i])), text(flat[i + 1]), bytes(flat[i + 2] or b""), flat[i + 3] or None)
            for i in range(0, len(flat), 4)
        ]

    # -- reads --------------------------------------------------------------------------------------

    def _read(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise StateStoreError(f"reading {what} failed: {exc}") from exc

    def meta(self, swarm_id: str) -> dict[str, bytes]:
        """All meta fields (empty when the swarm does not exist)."""
        raw = self._read("meta", self.client.hgetall, self.keys(swarm_id).meta)
        return {text(k): v for k, v in raw.items()}

    def member_blob(self, swarm_id: str, index: int) -> bytes | None:
        """The stored (encoded) signature of member ``index``, or ``None``."""
        value = self._read("members", self.client.hget, self.keys(swarm_id).members, str(index))
        return bytes(value) if value is not None else None

    def meta_field(self, swarm_id: str, name: str) -> bytes | None:
        value = self._read("meta", self.client.hget, self.keys(swarm_id).meta, name)
        return bytes(value) if value is not None else None

    def _indexed(self, key: str) -> dict[int, bytes]:
        raw = self._read(key, self.client.hgetall, key)
        return {int(text(k)): v for k, v in raw.items() if k != b"_"}

    def results(self, swarm_id: str) -> dict[int, bytes]:
        """Encoded results of succeeded members, by member index."""
        return self._indexed(self.keys(swarm_id).results)

    def errors(self, swarm_id: str) -> dict[int, bytes]:
        """JSON error records of failed members (at most ``summary_max_failures``), by member index."""
        return self._indexed(self.keys(swarm_id).errors)

    def children(self, swarm_id: str) -> list[str]:
        """Ids of the nested swarms started as members of this swarm."""
        raw = self._read("children", self.client.smembers, self.keys(swarm_id).children)
        return sorted(text(x) for x in raw if x != b"_")

    def member_states(self, swarm_id: str) -> dict[int, str]:
        """Every member's state letter (``q``, ``d``, ``r``, ``s``, ``f``, ``c``; registered ones are absent)."""
        raw = self._read("mstate", self.client.hgetall, self.keys(swarm_id).mstate)
        return {int(text(k)): text(v)[:1] for k, v in raw.items() if k != b"_"}

    def owner(self, swarm_id: str, index: int) -> Owner | None:
        """The owner record of a member holding a token (``None``: it holds none)."""
        raw = self._read("mstate", self.client.hget, self.keys(swarm_id).mstate, str(index))
        return Owner.parse(text(raw)[2:]) if raw and text(raw)[:1] in ("d", "r") else None

    def ttls(self, swarm_id: str) -> dict[str, int]:
        """TTL in seconds of every existing key of the swarm (``-1`` = none)."""
        out = {}
        for key in self.keys(swarm_id).all():
            if self._read(key, self.client.exists, key):
                out[key] = int(self._read(key, self.client.ttl, key))
        return out

    # -- per-prefix statistics (metrics): finished swarms' counters, reaper actions -------------------

    def add_stats(self, counts: dict[str, float]) -> None:
        """Add ``counts`` to the key prefix's statistics hash (one pipelined round trip)."""
        if not counts:
            return
        pipe = self.client.pipeline(transaction=False)
        for name, value in counts.items():
            if isinstance(value, int):
                pipe.hincrby(stats_key(self.prefix), name, value)
            else:
                pipe.hincrbyfloat(stats_key(self.prefix), name, value)
        self._read("stats", pipe.execute)

    def stats(self) -> dict[str, float]:
        """The key prefix's statistics: counters of finished swarms and of reaper actions."""
        raw = self._read("stats", self.client.hgetall, stats_key(self.prefix))
        return {text(k): float(v) for k, v in raw.items()}

    # -- global indexes (outside the scripts; readers drop stale entries) ---------------------------

    def _index_add(self, swarm_id: str) -> None:
        self._read("index", self.client.zadd, index_key(self.prefix), {swarm_id: time.time()})

    def mark_finished(self, swarm_id: str, finished_at: float) -> None:
        """Move a swarm from the index of unfinished swarms to the index of finished ones (once)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(index_key(self.prefix), swarm_id)
        pipe.zadd(finished_index_key(self.prefix), {swarm_id: finished_at})
        self._read("index", pipe.execute)

    def active_ids(self) -> list[str]:
        """Ids of the unfinished swarms whose state still exists (stale entries are removed)."""
        return [swarm_id for swarm_id, _ in self.indexed(["state"])]

    def metas(self, swarm_ids: Sequence[str], fields: Sequence[str]) -> list[dict[str, bytes]]:
        """The given meta fields of several swarms in one pipelined round trip (``{}`` for a missing swarm)."""
        pipe = self.client.pipeline(transaction=False)
        for swarm_id in swarm_ids:
            pipe.hmget(self.keys(swarm_id).meta, list(fields))
        rows = self._read("meta", pipe.execute) if swarm_ids else []
        return [{f: bytes(v) for f, v in zip(fields, row, strict=True) if v is not None} for row in rows]

    def count_indexed(self, finished: bool = False) -> int:
        """How many swarms the index holds (unfinished ones, or finished ones within their result TTL)."""
        key = finished_index_key(self.prefix) if finished else index_key(self.prefix)
        return int(self._read("index", self.client.zcard, key))

    def indexed(
        self, fields: Sequence[str], finished: bool = False, offset: int = 0, limit: int | None = None
    ) -> list[tuple[str, dict[str, bytes]]]:
        """``(id, meta fields)`` of indexed swarms that still exist, newest first: unfinished ones, or (with
        ``finished``) finished ones within their result TTL; a page of them with ``offset``/``limit``.

        Entries whose swarm expired (no ``state`` field) are removed from the index.
        """
        key = finished_index_key(self.prefix) if finished else index_key(self.prefix)
        stop = -1 if limit is None else offset + limit - 1
        ids = [text(x) for x in self._read("index", self.client.zrevrange, key, offset, stop)]
        return self._live(key, ids, fields)

    def unfinished_page(
        self, fields: Sequence[str], cursor: IndexCursor | None, limit: int
    ) -> tuple[list[tuple[str, dict[str, bytes]]], IndexCursor | None]:
        """A page of the unfinished swarms, oldest first, after ``cursor`` (``None``: from the start), and the
        cursor of the next page (``None`` after the last one).

        The cursor is a position in the index's order (score, and how many entries of that score were read),
        not an offset: swarms that leave or join the index meanwhile do not make a walk skip the ones it has
        not read yet. Entries whose swarm expired are removed, as :meth:`indexed` does.
        """
        key = index_key(self.prefix)
        low, seen = cursor if cursor is not None else (float("-inf"), 0)
        raw = self._read("index", self.client.zrangebyscore, key, low, "+inf", start=seen, num=limit, withscores=True)
        rows = self._live(key, [text(member) for member, _ in raw], fields)
        if len(raw) < limit:
            return rows, None
        last = float(raw[-1][1])
        live = {swarm_id for swarm_id, _ in rows}
        ties = sum(1 for member, score in raw if float(score) == last and text(member) in live)
        return rows, (last, ties + (seen if low == last else 0))

    def _live(self, key: str, ids: list[str], fields: Sequence[str]) -> list[tuple[str, dict[str, bytes]]]:
        """``(id, meta fields)`` of the swarms among ``ids`` that still exist; the others leave index ``key``."""
        rows = self.metas(ids, list(dict.fromkeys(["state", *fields]))) if ids else []
        stale = [swarm_id for swarm_id, row in zip(ids, rows, strict=True) if "state" not in row]
        if stale:
            self._read("index", self.client.zrem, key, *stale)
        return [(swarm_id, row) for swarm_id, row in zip(ids, rows, strict=True) if "state" in row]

    # -- leases and the reaper (worker/lease.py, worker/reaper.py) ------------------------------------------------

    def renew_many(self, held: dict[str, list[tuple[int, str]]]) -> dict[str, Renewal | None]:
        """Extend the leases of the deliveries a worker holds, ``{swarm: [(index, token)]}`` (``None``:
        the swarm is gone).

        Standalone Redis: one pipelined round trip for all swarms. Cluster: one call per swarm (the
        swarms' keys live on different slots).
        """
        args = {sid: [x for pair in pairs for x in pair] for sid, pairs in held.items() if pairs}
        if not args:
            return {}
        self.calls += 1
        try:
            if isinstance(self.client, redis.cluster.RedisCluster):
                replies = [self._scripts["renew"](keys=self.keys(s).all(), args=a) for s, a in args.items()]
            else:
                pipe = self.client.pipeline(transaction=False)
                for sid, a in args.items():
                    self._scripts["renew"](keys=self.keys(sid).all(), args=a, client=pipe)
                replies = pipe.execute()
        except redis.RedisError as exc:
            raise StateStoreError(f"renewing leases failed: {exc}") from exc
        return {sid: renewal_from(reply) for sid, reply in zip(args, replies, strict=True)}

    def reap(self, swarm_id: str, claim_s: float, limit: int) -> Reaped | None:
        """Expired members and a stale finalization claim (taken over) of one swarm; ``None`` if gone."""
        reply = self._run("reap", swarm_id, [claim_s, limit])
        status = text(reply[0])
        if status != "ok":
            return Reaped(done=True) if status == "done" else None
        flat = reply[4]
        expired = [
            Expired(
                int(text(flat[i])),
                text(flat[i + 1]),
                float(text(flat[i + 2])),
                bytes(flat[i + 3]),
                Owner.parse(flat[i + 4]),
            )
            for i in range(0, len(flat), 5)
        ]
        state, stale, on_lost = text(reply[1]), text(reply[2]), text(reply[3])
        now, lease_s, dispatch_to = (float(text(x)) for x in reply[5:8])
        next_at = float(text(reply[8])) if text(reply[8]) else None
        rate_ready = len(reply) > 9 and int(reply[9]) == 1
        return Reaped(False, state, stale, on_lost, expired, now, lease_s, dispatch_to, next_at, rate_ready)

    def requeue(self, swarm_id: str, indices: Sequence[int], want_ctx: bool) -> Transition:
        """Re-publish members whose token deadline passed (in a new publish epoch); cancel them in an ended swarm."""
        return transition_from(self._run("requeue", swarm_id, [int(want_ctx), *indices]))

    # -- pools (one slot each: {pool:<name>}) -----------------------------------------------------------

    def _pool(self, script: str, name: str, args: Sequence[Any]) -> Any:
        self.calls += 1
        try:
            return self._scripts[f"pool/{script}"](keys=PoolKeys(self.prefix, name).all(), args=list(args))
        except redis.RedisError as exc:
            raise StateStoreError(f"pool {name}: {script} failed: {exc}") from exc

    def pool_settle(self, name: str, swarm_id: str, want: int, weight: int, released: Sequence[str]) -> PoolSettlement:
        """Give back grants, state a swarm's demand (``swarm_id`` ``""``: none), hand free tokens out."""
        return PoolSettlement.parse(self._pool("settle", name, [swarm_id, want, weight, *released]))

    def pool_configure(self, name: str, limit: int, rate_int: float, rate: str = "") -> PoolSettlement:
        """Set a pool's limit (0: unlimited) and seconds between grants (0: no rate; ``rate`` as given);
        hand tokens out."""
        self._read("pools", self.client.sadd, pools_key(self.prefix), name)
        return PoolSettlement.parse(self._pool("configure", name, [limit, repr(rate_int), rate]))

    def pool_drop(self, name: str, holders: Sequence[tuple[str, str]]) -> PoolSettlement:
        """Free grants whose holder is gone (each with the value it was read with), hand tokens out."""
        return PoolSettlement.parse(self._pool("drop", name, [x for pair in holders for x in pair]))

    def pool_view(self, name: str) -> PoolView:
        """A pool as it is now."""
        reply = self._pool("view", name, [])
        holders = reply[4]
        waiting = reply[5]
        return PoolView(
            name=name,
            limit=int(float(text(reply[0]))),
            rate_int=float(text(reply[1])),
            tat=float(text(reply[2])),
            now=float(text(reply[3])),
            holders={text(holders[i]): text(holders[i + 1]) for i in range(0, len(holders), 2)},
            waiting=[(text(waiting[i]), int(text(waiting[i + 1]))) for i in range(0, len(waiting), 2)],
            rate=text(reply[6]) if len(reply) > 6 else "",
            grants_made=int(text(reply[7])) if len(reply) > 7 else 0,
        )

    def register_pool(self, name: str) -> None:
        """Remember a pool name (a pooled swarm started on it)."""
        self._read("pools", self.client.sadd, pools_key(self.prefix), name)

    def pool_names(self) -> list[str]:
        """Names of the pools used under this prefix."""
        return sorted(text(x) for x in self._read("pools", self.client.smembers, pools_key(self.prefix)))

    def held_grants(self, swarm_id: str) -> set[str] | None:
        """The pool grants the members of a swarm hold now (``None``: the swarm is gone)."""
        reply = self._run("held", swarm_id)
        if text(reply[0]) == "unknown":
            return None
        return {text(g) for g in reply[1]}

    # -- the due index: what the reaper must look at, and when -----------------------------------------

    def schedule(self, member: str, when: float) -> None:
        """Have the reaper look at ``member`` (a swarm id) at ``when`` at the latest (epoch seconds)."""
        self._read("due", self.client.zadd, due_key(self.prefix), {member: when}, lt=True)

    def schedule_soon(self, member: str, delay_s: float = 1.0) -> None:
        """Have the reaper look at ``member`` within ``delay_s`` (it then finds its real next deadline)."""
        self.schedule(member, time.time() + delay_s)

    def unscheduled(self, members: Sequence[str]) -> list[str]:
        """Which of ``members`` have no entry in the due index (one pipelined round trip)."""
        if not members:
            return []
        pipe = self.client.pipeline(transaction=False)
        for member in members:
            pipe.zscore(due_key(self.prefix), member)
        scores = self._read("due", pipe.execute)
        return [member for member, score in zip(members, scores, strict=True) if score is None]

    def due(self, limit: int) -> tuple[float, list[tuple[str, str]]]:
        """``(now, [(member, score)])``: what is due now by the state Redis's clock, earliest first."""
        self.calls += 1
        try:
            reply = self._scripts["due/peek"](keys=[due_key(self.prefix)], args=[limit])
        except redis.RedisError as exc:
            raise StateStoreError(f"reading the due index failed: {exc}") from exc
        flat = reply[1]
        return float(text(reply[0])), [(text(flat[i]), text(flat[i + 1])) for i in range(0, len(flat), 2)]

    def reschedule(self, member: str, taken_score: str, next_at: float | None) -> bool:
        """Move a due entry the reaper took to ``next_at`` (drop it with ``None``), unless it moved meanwhile."""
        args = [member, taken_score, "" if next_at is None else repr(next_at)]
        try:
            return bool(self._scripts["due/reschedule"](keys=[due_key(self.prefix)], args=args))
        except redis.RedisError as exc:
            raise StateStoreError(f"rescheduling {member} failed: {exc}") from exc

    def reaper_lock(self, ttl_s: float) -> ReaperLock:
        """The lock electing the one active reaper of this key prefix."""
        return ReaperLock(self.client.lock(reaper_lock_key(self.prefix), timeout=ttl_s, thread_local=False))


class ReaperLock:
    """A Redis lock with a TTL, held by the active reaper and extended on every tick."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def hold(self) -> bool:
        """Acquire the lock, or extend it if this holder has it; ``False`` if another holder has it."""
        try:
            if self._lock.owned():
                return bool(self._lock.reacquire())
            return bool(self._lock.acquire(blocking=False))
        except redis.exceptions.LockError:
            return False
        except redis.RedisError as exc:
            raise StateStoreError(f"reaper lock failed: {exc}") from exc

    def release(self) -> None:
        """Release the lock if this holder has it (errors are ignored: it expires anyway)."""
        try:
            if self._lock.owned():
                self._lock.release()
        except redis.RedisError:
            pass
