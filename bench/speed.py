"""Two figures of how fast this machine is at the two kinds of work a swarm member costs.

A plain group's CPU per task (the machine-speed line) mixes both. Printed beside it, these tell a
reader *which* kind of work is slow on a machine: straight-line Python (what a group's client mostly
does: build and publish messages in a loop) or a Redis round trip (what a worker pays per
message and per state script: a send, a wake-up, a receive). A swarm moves publishing from the client
to the worker and adds two state round trips per member there, so its ratio to a group falls on a
machine whose round trips are slow relative to its Python speed (see docs/performance.md, "Why the
ratios depend on the machine").
"""

from __future__ import annotations

import time
from typing import Any

import redis

PYTHON_OPS = 1_000_000
ROUND_TRIPS = 3_000


def _python_ops(n: int) -> dict[int, int]:
    table: dict[int, int] = {}
    for i in range(n):
        table[i & 255] = table.get(i & 127, 0) + i
    return table


def measure(client: redis.Redis) -> dict[str, Any]:
    """Python loop CPU per operation (ns) and a Redis ``PING`` round trip's client CPU and wall time (µs)."""
    cpu0 = time.process_time()
    _python_ops(PYTHON_OPS)
    python_ns = (time.process_time() - cpu0) / PYTHON_OPS * 1e9
    client.ping()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(ROUND_TRIPS):
        client.ping()
    return {
        "python_ns_per_op": python_ns,
        "roundtrip_cpu_us": (time.process_time() - cpu0) / ROUND_TRIPS * 1e6,
        "roundtrip_wall_us": (time.perf_counter() - wall0) / ROUND_TRIPS * 1e6,
    }
