"""SwarmStore: the only module that talks to the state Redis.

One typed method per Lua script (each is one atomic state transition), plus plain reads. Redis errors
are raised as :class:`~mageflow_celery.errors.StateStoreError`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script

from .errors import StateStoreError
from .keys import SwarmKeys, index_key
from .scripts import SOURCES


@dataclass(frozen=True, slots=True)
class Transition:
    """What a state transition did and what the caller must do next.

    ``admitted`` are ``(index, encoded member)`` pairs the caller must publish; ``fin`` is ``"s"``,
    ``"f"`` or ``"c"`` when this caller won the finalization decision; ``revoke`` lists member
    indices to revoke.
    """

    status: str
    fin: str = ""
    admitted: list[tuple[int, bytes]] = field(default_factory=list)
    ctx: bytes | None = None
    revoke: list[int] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _transition(reply: Sequence[Any]) -> Transition:
    status = _s(reply[0])
    if len(reply) < 2:
        return Transition(status)
    fin = _s(reply[1]) if len(reply) > 1 and reply[1] else ""
    ids = reply[2] if len(reply) > 2 else []
    sigs = reply[3] if len(reply) > 3 else []
    ctx = reply[4] if len(reply) > 4 and reply[4] else None
    revoke = [int(_s(x)) for x in reply[5]] if len(reply) > 5 and reply[5] else []
    extra = list(reply[6:]) if len(reply) > 6 else []
    admitted = [(int(_s(i)), bytes(s)) for i, s in zip(ids, sigs, strict=True)]
    return Transition(status, fin, admitted, ctx, revoke, extra)


def connect(url: str) -> redis.Redis:
    """A client for ``url``; a Redis Cluster node URL gives a cluster client."""
    client = redis.Redis.from_url(url)
    try:
        cluster = client.info("cluster").get("cluster_enabled") == 1
    except redis.RedisError as exc:
        raise StateStoreError(f"cannot reach the state Redis: {exc}") from exc
    if cluster:
        client.close()
        return redis.cluster.RedisCluster.from_url(url)  # type: ignore[return-value]
    return client


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
        created = _s(reply[0]) == "created"
        if created:
            self._index_add(swarm_id)
        return created

    def start(self, swarm_id: str, ctx: bytes, definition: bytes, want_ctx: bool) -> Transition:
        return _transition(self._run("start", swarm_id, [ctx, definition, int(want_ctx)]))

    def add(self, swarm_id: str, members: Sequence[bytes], run: bool, want_ctx: bool) -> Transition:
        return _transition(self._run("add", swarm_id, ["run" if run else "register", int(want_ctx), *members]))

    def enqueue(self, swarm_id: str, index: int, member: bytes, want_ctx: bool) -> Transition:
        return _transition(self._run("enqueue", swarm_id, [index, member, int(want_ctx)]))

    def receive(self, swarm_id: str, index: int) -> str:
        return _s(self._run("receive", swarm_id, [index])[0])

    def report(self, swarm_id: str, outcomes: Sequence[tuple[int, str, bytes]], want_ctx: bool) -> Transition:
        """Record final outcomes ``(index, kind, payload)``; kind is ``s`` (ok), ``f`` (failed) or ``x`` (revoked)."""
        flat: list[Any] = [int(want_ctx)]
        for index, kind, payload in outcomes:
            flat += [index, kind, payload]
        return _transition(self._run("report", swarm_id, flat))

    def close(self, swarm_id: str) -> Transition:
        return _transition(self._run("close", swarm_id))

    def pause(self, swarm_id: str) -> Transition:
        return _transition(self._run("pause", swarm_id))

    def resume(self, swarm_id: str, want_ctx: bool) -> Transition:
        return _transition(self._run("resume", swarm_id, [int(want_ctx)]))

    def cancel(self, swarm_id: str) -> Transition:
        return _transition(self._run("cancel", swarm_id))

    def finalized(self, swarm_id: str) -> str:
        return _s(self._run("finalized", swarm_id)[0])

    # -- reads --------------------------------------------------------------------------------------

    def _read(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise StateStoreError(f"reading {what} failed: {exc}") from exc

    def meta(self, swarm_id: str) -> dict[str, bytes]:
        """All meta fields (empty when the swarm does not exist)."""
        raw = self._read("meta", self.client.hgetall, self.keys(swarm_id).meta)
        return {_s(k): v for k, v in raw.items()}

    def meta_field(self, swarm_id: str, name: str) -> bytes | None:
        value = self._read("meta", self.client.hget, self.keys(swarm_id).meta, name)
        return bytes(value) if value is not None else None

    def _indexed(self, key: str) -> dict[int, bytes]:
        raw = self._read(key, self.client.hgetall, key)
        return {int(_s(k)): v for k, v in raw.items() if k != b"_"}

    def results(self, swarm_id: str) -> dict[int, bytes]:
        """Encoded results of succeeded members, by member index."""
        return self._indexed(self.keys(swarm_id).results)

    def errors(self, swarm_id: str) -> dict[int, bytes]:
        """JSON error records of failed members (at most ``summary_max_failures``), by member index."""
        return self._indexed(self.keys(swarm_id).errors)

    def member_states(self, swarm_id: str) -> dict[int, str]:
        raw = self._read("mstate", self.client.hgetall, self.keys(swarm_id).mstate)
        return {int(_s(k)): _s(v) for k, v in raw.items() if k != b"_"}

    def ttls(self, swarm_id: str) -> dict[str, int]:
        """TTL in seconds of every existing key of the swarm (``-1`` = none)."""
        out = {}
        for key in self.keys(swarm_id).all():
            if self._read(key, self.client.exists, key):
                out[key] = int(self._read(key, self.client.ttl, key))
        return out

    # -- global index (outside the scripts; readers drop stale entries) -----------------------------

    def _index_add(self, swarm_id: str) -> None:
        self._read("index", self.client.zadd, index_key(self.prefix), {swarm_id: time.time()})

    def active_ids(self) -> list[str]:
        """Ids in the index of swarms whose state still exists (stale entries are removed)."""
        key = index_key(self.prefix)
        ids = [_s(x) for x in self._read("index", self.client.zrange, key, 0, -1)]
        alive = []
        for swarm_id in ids:
            if self._read("index", self.client.exists, self.keys(swarm_id).meta):
                alive.append(swarm_id)
            else:
                self._read("index", self.client.zrem, key, swarm_id)
        return alive
