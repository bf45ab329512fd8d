"""Cost at scale: the reaper over many idle swarms (SPEC P5) and streaming members into one swarm (P9, P3).

``python -m bench.scale [--quick]`` starts its own throwaway Redis servers and prints both results as
JSON; :mod:`bench.run` calls :func:`run_reaper_idle` and :func:`run_stream` with its own servers.

The reaper's swarms are made by the store's own Lua scripts (``create``, ``start``, ``add``, ``report``,
``finalized``), pipelined, as :mod:`bench.scaling` does (the public API makes a round trip per call).
That still costs about 1 ms per swarm on the 2-core reference machine, so by default one swarm of each
kind is made that way and copied key by key on the server (``COPY``: same encodings, same TTLs);
``clone=False`` (``--fill scripts``) makes every swarm with the scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import FINAL_STEP, due_key, finished_index_key, index_key
from mageflow_celery.state.store import SwarmStore
from mageflow_celery.worker.reaper import Reaper, reap_once

from .meter import RedisProbe
from .procs import REPO

#: Swarms created per pipelined round trip while filling.
FILL_CHUNK = 1000
#: Registered (never queued) members of each idle open swarm.
IDLE_MEMBERS = 3
#: Lease of the one swarm made due for the control tick (the smallest ``SwarmConfig`` allows).
CONTROL_LEASE_S = 1.0
#: Members of each small swarm the big one is compared with (P3), and how many small swarms: every member
#: of the small swarms is driven, and as many members spread over the big one.
SMALL_N = 1000
SMALL_SWARMS = 5
SAMPLE = SMALL_N * SMALL_SWARMS
#: Rounds the driven sample is split into, alternating the big and the small swarms (two per small swarm).
ROUNDS = 2 * SMALL_SWARMS
_RESULT = b"null"
_MIB = 1024 * 1024


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def redis_cpu_s(client: redis.Redis) -> float:
    """``used_cpu_sys + used_cpu_user`` of a Redis server (``INFO cpu``), seconds."""
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def script_usec(probe: RedisProbe) -> int:
    """Microseconds Redis spent in Lua scripts so far (``INFO commandstats``)."""
    commands = probe.commands()
    return commands.get("evalsha.usec", 0) + commands.get("eval.usec", 0)


def flush(client: redis.Redis, timeout_s: float = 120.0) -> None:
    """Empty the database, freeing in the background, and wait until it is freed (memory measured next
    must not count it; a blocking ``FLUSHDB`` of millions of keys outlasts the client's socket timeout)."""
    client.flushdb(asynchronous=True)
    deadline = time.monotonic() + timeout_s
    while int(client.info("memory").get("lazyfree_pending_objects", 0)) and time.monotonic() < deadline:
        time.sleep(0.1)


def timed(client: redis.Redis, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Run ``fn``: its wall time and the Redis CPU it caused (ms), and what it returned."""
    cpu0 = redis_cpu_s(client)
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    return 1e3 * wall, 1e3 * (redis_cpu_s(client) - cpu0), out


# -- P5: the reaper over many idle swarms ---------------------------------------------------------------


def _contexts(app: Celery) -> tuple[bytes, bytes]:
    codec = runtime_for(app).task_codec
    ctx = codec.dumps({"args": [], "kwargs": {}, "options": {}, "root_id": ""})
    definition = codec.dumps({"success": [], "error": [], "canvas": {}, "root_id": ""})
    return ctx, definition


def _flat(meta: dict[str, Any]) -> list[Any]:
    return [len(meta), *[x for kv in meta.items() for x in kv]]


#: Clones a swarm's keys (COPY keeps encodings and TTLs) under new ids, and indexes the clones.
#: KEYS: the template's keys (``SwarmKeys.all()``), then the index to add the clones to; ARGV[1] the
#: template's key head (``<p>:swarm:{``), ARGV[2] now, ARGV[3 ..] the new ids.
_CLONE_LUA = """
local n = #KEYS - 1
local suffix = {}
for j = 1, n do suffix[j] = string.sub(KEYS[j], string.find(KEYS[j], '}', 1, true), -1) end
for i = 3, #ARGV do
  for j = 1, n do redis.call('COPY', KEYS[j], ARGV[1] .. ARGV[i] .. suffix[j]) end
  redis.call('ZADD', KEYS[n + 1], ARGV[2], ARGV[i])
end
return #ARGV - 2
"""


def _ids(n: int) -> list[list[str]]:
    """``n`` new swarm ids (uuid4, as Celery makes them), in chunks of ``FILL_CHUNK``."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    return [ids[i : i + FILL_CHUNK] for i in range(0, n, FILL_CHUNK)]


def _clone(store: SwarmStore, template: str, n: int, index: str) -> None:
    """``n`` copies of swarm ``template`` (itself made by the store's scripts), indexed in ``index``."""
    script = store.client.register_script(_CLONE_LUA)
    keys = [*store.keys(template).all(), index]
    head = f"{store.prefix}:swarm:{{"
    for chunk in _ids(n):
        script(keys=keys, args=[head, time.time(), *chunk])
    store.client.delete(*store.keys(template).all())
    store.client.zrem(index, template)


def _create_idle(store: SwarmStore, ids: list[str], meta: list[Any], ctx: list[Any], blobs: list[bytes]) -> None:
    """Open swarms made by the store's scripts (``create``, ``start``, ``add`` of registered members)."""
    create, start, add = (store._scripts[name] for name in ("create", "start", "add"))
    pipe = store.client.pipeline(transaction=False)
    for sid in ids:
        keys = store.keys(sid).all()
        create(keys=keys, args=meta, client=pipe)
        start(keys=keys, args=ctx, client=pipe)
        add(keys=keys, args=["register", 0, 1, *blobs], client=pipe)
    pipe.zadd(index_key(store.prefix), {sid: time.time() for sid in ids})
    pipe.execute()


def _create_finished(store: SwarmStore, ids: list[str], meta: list[Any], ctx: list[Any]) -> None:
    """Swarms of one member made by the store's scripts: ``create``, ``start`` (admits it), ``report``
    (it succeeded: the swarm finishes), ``finalized`` (the claim released), indexed as finished."""
    create, start, report, finalized = (store._scripts[x] for x in ("create", "start", "report", "finalized"))
    pipe = store.client.pipeline(transaction=False)
    for sid in ids:
        keys = store.keys(sid).all()
        create(keys=keys, args=meta, client=pipe)
        start(keys=keys, args=ctx, client=pipe)
        report(keys=keys, args=[0, 0, "s", _RESULT], client=pipe)
        finalized(keys=keys, client=pipe)
    pipe.zadd(finished_index_key(store.prefix), {sid: time.time() for sid in ids})
    replies = pipe.execute()
    assert all(r[1] == b"s" for r in replies[2::4]), "a filled swarm did not finish"


def fill_idle(app: Celery, n: int, *, members: int = IDLE_MEMBERS, clone: bool = True) -> float:
    """``n`` started open swarms, each with ``members`` registered members (added, never queued: nothing
    holds a token, nothing is due), indexed as unfinished. Each is made by the store's scripts, or (with
    ``clone``) one is, and copied. Returns the seconds it took."""
    from bench import app as b

    rt = runtime_for(app)
    store = rt.store
    meta = _flat(swarm(config=SwarmConfig(), app=app)._meta(rt))
    ctx = [*_contexts(app), 0]
    blobs = [rt.task_codec.dumps(dict(b.noop.s(i))) for i in range(members)]
    t0 = time.perf_counter()
    if clone:
        template = str(uuid.uuid4())
        _create_idle(store, [template], meta, ctx, blobs)
        _clone(store, template, n, index_key(store.prefix))
    else:
        for ids in _ids(n):
            _create_idle(store, ids, meta, ctx, blobs)
    return time.perf_counter() - t0


def fill_finished(app: Celery, n: int, *, clone: bool = True) -> float:
    """``n`` finished swarms of one member that succeeded, within their result TTL, indexed as finished.
    Each is made by the store's scripts, or (with ``clone``) one is, and copied. Returns the seconds it
    took."""
    from bench import app as b

    rt = runtime_for(app)
    store = rt.store
    template = swarm(tasks=[b.noop.s(0)], config=SwarmConfig(), is_swarm_closed=True, app=app)
    meta = [*_flat(template._meta(rt)), *template._member_blobs(app)]
    ctx = [*_contexts(app), 0]
    t0 = time.perf_counter()
    if clone:
        first = str(uuid.uuid4())
        _create_finished(store, [first], meta, ctx)
        _clone(store, first, n, finished_index_key(store.prefix))
    else:
        for ids in _ids(n):
            _create_finished(store, ids, meta, ctx)
    return time.perf_counter() - t0


def lost_member_swarm(app: Celery) -> str:
    """A started swarm whose one member was received by a worker that then died: its lease expires
    ``CONTROL_LEASE_S`` later, and the reaper must re-publish it."""
    from bench import app as b

    s = swarm(tasks=[b.noop.s()], config=SwarmConfig(lease_s=CONTROL_LEASE_S), is_swarm_closed=True, app=app)
    swarm_id = s.apply_async().id
    assert runtime_for(app).store.receive(swarm_id, 0, FINAL_STEP, "dead-worker") == "ok"
    return swarm_id


def drop_swarm(app: Celery, swarm_id: str) -> None:
    """Remove a swarm's keys and index entries (the control swarm, once measured)."""
    store = runtime_for(app).store
    store.client.delete(*store.keys(swarm_id).all())
    store.client.zrem(due_key(store.prefix), swarm_id)
    store.client.zrem(index_key(store.prefix), swarm_id)


def control(app: Celery, client: redis.Redis, tick: Callable[[], Any]) -> dict[str, Any]:
    """Make one swarm due (a lost member whose lease expired), then time ``tick`` acting on it."""
    swarm_id = lost_member_swarm(app)
    time.sleep(CONTROL_LEASE_S + 0.3)
    wall, cpu, report = timed(client, tick)
    drop_swarm(app, swarm_id)
    app.control.purge()
    return {"wall_ms": wall, "redis_cpu_ms": cpu, "swarms": report.swarms, "acted": report.requeued == 1}


def _ticks(client: redis.Redis, fn: Callable[[], Any], reps: int) -> dict[str, float]:
    walls, cpus, seen = [], [], 0
    for _ in range(reps):
        wall, cpu, out = timed(client, fn)
        walls.append(wall)
        cpus.append(cpu)
        seen = max(seen, getattr(out, "swarms", 0))
    return {
        "wall_ms_median": med(walls),
        "wall_ms_max": max(walls),
        "redis_cpu_ms_median": med(cpus),
        "redis_cpu_ms_max": max(cpus),
        "swarms_seen_max": seen,
    }


def run_reaper_idle(
    app: Celery, state: RedisProbe, n_open: int, n_finished: int, reps: int, *, clone: bool = True
) -> dict[str, Any]:
    """P5: fill the state Redis (emptied first, and again at the end) with ``n_open`` idle open swarms and
    ``n_finished`` finished ones, then time ``reap_once(app)`` ``reps`` times (``tick_*``: wall time and
    the state Redis's CPU per pass, from ``INFO cpu``). ``reap_once`` is a full pass: it sweeps the whole
    index of unfinished swarms first. The worker's own loop is timed too: its look at the due index every
    ``poll_s`` (``poll_tick_*``: ``Reaper.tick``) and its sweep of one page of unfinished swarms every
    ``interval_s`` (``sweep_page_*``: ``Reaper.sweep``). Then one swarm is made due (a lost member whose
    lease expired) for each of ``Reaper.tick`` (``due_poll_*``) and ``reap_once`` (``due_tick_*``,
    ``due_acted``): it must re-publish the member."""
    client = state.client
    flush(client)
    fill_open_s = fill_idle(app, n_open, clone=clone)
    fill_finished_s = fill_finished(app, n_finished, clone=clone)
    store = runtime_for(app).store
    reaper = Reaper(runtime_for(app))
    reap_once(app)  # warm-up: scripts loaded, connections open
    full = _ticks(client, lambda: reap_once(app), reps)
    poll = _ticks(client, reaper.tick, max(reps, 20))
    sweep = _ticks(client, reaper.sweep, max(reps, 20))
    info = _ticks(client, lambda: None, max(reps, 20))
    out: dict[str, Any] = {
        "open": store.count_indexed(),
        "finished": store.count_indexed(finished=True),
        "due_entries": int(client.zcard(due_key(store.prefix))),
        "dbsize": int(client.dbsize()),
        "used_memory_mib": int(client.info("memory")["used_memory"]) / _MIB,
        "fill": "clone" if clone else "scripts",
        "fill_s": fill_open_s + fill_finished_s,
        "fill_open_s": fill_open_s,
        "fill_finished_s": fill_finished_s,
        "reps": reps,
        **{f"tick_{k}": v for k, v in full.items()},
        **{f"poll_tick_{k}": v for k, v in poll.items()},
        **{f"sweep_page_{k}": v for k, v in sweep.items()},
        "info_overhead_redis_cpu_ms_median": info["redis_cpu_ms_median"],
    }
    due_poll = control(app, client, reaper.tick)
    due_full = control(app, client, lambda: reap_once(app))
    out.update(
        due_tick_wall_ms=due_full["wall_ms"],
        due_tick_redis_cpu_ms=due_full["redis_cpu_ms"],
        due_tick_swarms=due_full["swarms"],
        due_acted=due_full["acted"],
        due_poll_tick_wall_ms=due_poll["wall_ms"],
        due_poll_tick_redis_cpu_ms=due_poll["redis_cpu_ms"],
        due_poll_tick_swarms=due_poll["swarms"],
        due_poll_acted=due_poll["acted"],
    )
    flush(client)
    return out


# -- P9 and P3: streaming members into one swarm -----------------------------------------------------------


def _child(n: int, batch: int, env: dict[str, str]) -> dict[str, Any]:
    """Run :mod:`bench.stream_child` and return what it printed (its last line, JSON)."""
    cmd = [sys.executable, "-m", "bench.stream_child", "--n", str(n), "--batch", str(batch)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def _spread(size: int, k: int) -> list[int]:
    """``k`` member indices spread evenly over ``range(size)``."""
    k = min(k, size)
    return [i * size // k for i in range(k)]


def drive_members(store: SwarmStore, probe: RedisProbe, swarm_id: str, indices: list[int]) -> dict[str, float]:
    """Play the client's and the worker's part for registered members of a started swarm: queue each
    (``enqueue``, as ``member.delay()`` does), then ``receive`` and ``report`` each as it is admitted.
    Returns Lua script microseconds per member of each part, and wall microseconds per member."""
    pipe = store.client.pipeline(transaction=False)
    for index in indices:
        pipe.hget(store.keys(swarm_id).members, str(index))
    blobs = pipe.execute()
    u0, t0 = script_usec(probe), time.perf_counter()
    todo: deque[int] = deque()
    for index, blob in zip(indices, blobs, strict=True):
        tr = store.enqueue(swarm_id, index, blob, want_ctx=False)
        assert tr.status == "ok", tr.status
        todo.extend(a.index for a in tr.admitted)
    u1 = script_usec(probe)
    done = 0
    while todo:
        index = todo.popleft()
        assert store.receive(swarm_id, index, FINAL_STEP, f"bench-{index}") == "ok"
        tr = store.report(swarm_id, [(index, "s", _RESULT)], want_ctx=False)
        todo.extend(a.index for a in tr.admitted)
        done += 1
    u2, t2 = script_usec(probe), time.perf_counter()
    assert done == len(indices), f"{done} of {len(indices)} members ran"
    k = len(indices)
    return {"enqueue_us": (u1 - u0) / k, "receive_report_us": (u2 - u1) / k, "wall_us": 1e6 * (t2 - t0) / k}


def compare_scripts(state_url: str, prefix: str, big: tuple[str, int], smalls: list[tuple[str, int]]) -> dict[str, Any]:
    """P3 at size: the per-member scripts on the big swarm vs the small ones (all their members; as many
    spread over the big one), in ``ROUNDS`` alternating rounds: round ``r`` drives half of small swarm
    ``r // 2``. The median of the rounds is compared, so one noisy round moves nothing."""
    probe = RedisProbe("state", state_url)
    store = SwarmStore(redis.Redis.from_url(state_url), prefix)
    big_picks = _spread(big[1], SAMPLE)
    runs: dict[str, list[dict[str, float]]] = {"big": [], "small": []}
    for r in range(ROUNDS):
        small_id, small_n = smalls[(r // 2) % len(smalls)]
        part = {"big": (big[0], big_picks[r::ROUNDS]), "small": (small_id, _spread(small_n, small_n)[r % 2 :: 2])}
        for name in ("big", "small") if r % 2 == 0 else ("small", "big"):
            runs[name].append(drive_members(store, probe, *part[name]))
    sampled = {"big": len(big_picks), "small": sum(n for _, n in smalls)}
    out: dict[str, Any] = {}
    for name, samples in runs.items():
        for key in ("enqueue_us", "receive_report_us", "wall_us"):
            out[f"{key}_{name}"] = med([s[key] for s in samples])
        out[f"script_us_per_member_{name}"] = out[f"enqueue_us_{name}"] + out[f"receive_report_us_{name}"]
        out[f"sampled_{name}"] = sampled[name]
    out["script_cost_ratio"] = out["script_us_per_member_big"] / out["script_us_per_member_small"]
    out["receive_report_ratio"] = out["receive_report_us_big"] / out["receive_report_us_small"]
    return out


def run_stream(n: int, batch: int, broker_url: str, state_url: str) -> dict[str, Any]:
    """P9: in a child process, add ``n`` no-op members to one started open swarm from a generator, in
    batches of ``batch`` (``Swarm.add_tasks``): the child's peak RSS, wall time, members/s, and the state
    Redis's memory after. Then P3 at that size: the per-member state scripts on that swarm vs on a swarm
    of ``SMALL_N`` members streamed the same way (``script_cost_ratio``, big / small; ``SMALL_SWARMS`` of
    them, for a sample as big as the big swarm's). The swarms are deleted at the end."""
    env = {**os.environ, "BENCH_BROKER_URL": broker_url, "BENCH_STATE_URL": state_url}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    smalls = [_child(SMALL_N, min(batch, SMALL_N), env) for _ in range(SMALL_SWARMS)]
    state = redis.Redis.from_url(state_url)
    used_before = int(state.info("memory")["used_memory"])
    big = _child(n, batch, env)
    used_after = int(state.info("memory")["used_memory"])
    p3 = compare_scripts(state_url, big["prefix"], (big["swarm_id"], n), [(x["swarm_id"], SMALL_N) for x in smalls])
    store = SwarmStore(state, big["prefix"])
    for swarm_id in [big["swarm_id"], *(x["swarm_id"] for x in smalls)]:
        state.unlink(*store.keys(swarm_id).all())
        state.zrem(due_key(store.prefix), swarm_id)
        state.zrem(index_key(store.prefix), swarm_id)
    return {
        "n": n,
        "batch": batch,
        "rss_peak_mib": big["rss_peak_mib"],
        "rss_start_mib": big["rss_start_mib"],
        "rss_end_mib": big["rss_end_mib"],
        "add_wall_s": big["add_wall_s"],
        "members_per_s": n / big["add_wall_s"],
        "child_wall_s": big["child_wall_s"],
        "state_used_memory_mib": used_after / _MIB,
        "state_swarm_memory_mib": (used_after - used_before) / _MIB,
        "add_script_us_per_member_first": big["add_script_us_first"],
        "add_script_us_per_member_last": big["add_script_us_last"],
        "add_script_cost_ratio": big["add_script_us_last"] / big["add_script_us_first"],
        **p3,
    }


# -- running both on throwaway servers ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    p.add_argument("--open", type=int, help="idle open swarms (default 100,000; quick 2,000)")
    p.add_argument("--finished", type=int, help="finished swarms (default 100,000; quick 2,000)")
    p.add_argument("--reps", type=int, help="timed reaper passes (default 5; quick 3)")
    p.add_argument("--n", type=int, help="members streamed into one swarm (default 1,000,000; quick 5,000)")
    p.add_argument("--batch", type=int, help="members per add (default 10,000; quick 1,000)")
    p.add_argument("--only", choices=["reaper", "stream"], help="run one of the two")
    p.add_argument("--fill", choices=["clone", "scripts"], default="clone", help="how the reaper's swarms are made")
    args = p.parse_args(argv)
    quick = args.quick
    n_open = args.open or (2000 if quick else 100_000)
    n_finished = args.finished or (2000 if quick else 100_000)
    reps = args.reps or (3 if quick else 5)
    n, batch = args.n or (5000 if quick else 1_000_000), args.batch or (1000 if quick else 10_000)
    results: dict[str, Any] = {}
    from mageflow_celery.testing import RedisServer

    with RedisServer() as broker_server, RedisServer() as state_server:
        os.environ["BENCH_BROKER_URL"] = broker_server.url
        os.environ["BENCH_STATE_URL"] = state_server.url
        from bench import app as bench_app

        if args.only in (None, "reaper"):
            t0 = time.perf_counter()
            probe = RedisProbe("state", state_server.url)
            results["reaper_idle"] = run_reaper_idle(
                bench_app.app, probe, n_open, n_finished, reps, clone=args.fill == "clone"
            )
            results["reaper_idle"]["scenario_s"] = time.perf_counter() - t0
            print(json.dumps({"reaper_idle": results["reaper_idle"]}, indent=1), flush=True)
        if args.only in (None, "stream"):
            t0 = time.perf_counter()
            results["stream"] = run_stream(n, batch, broker_server.url, state_server.url)
            results["stream"]["scenario_s"] = time.perf_counter() - t0
            print(json.dumps({"stream": results["stream"]}, indent=1), flush=True)
    return results


if __name__ == "__main__":
    main()
