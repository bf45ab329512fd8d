"""The failure summary handed to error callbacks and carried by :class:`SwarmFailedError`.

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..keys import member_task_id

#: Longest exception message kept per failed member, in characters.
MESSAGE_MAX = 1024

COUNTS = ("total", "registered", "queued", "dispatched", "running", "succeeded", "failed", "cancelled")


def error_record(swarm_id: str, index: int, task_id: str | None, exc: BaseException | None, kind: str = "") -> bytes:
    """JSON record of one failed member, as stored in the ``errors`` hash."""
    etype = type(exc).__name__ if exc is not None else (kind or "Unknown")
    message = str(exc) if exc is not None else ""
    return json.dumps(
        {
            "task_id": task_id or member_task_id(swarm_id, index),
            "index": index,
            "exc_type": etype,
            "message": message[:MESSAGE_MAX],
        }
    ).encode()


def counts(meta: Mapping[str, bytes]) -> dict[str, int]:
    out = {}
    for name in COUNTS:
        raw = meta.get(name, b"0") or b"0"
        out[name] = int(float(raw))
    return out


def build_summary(swarm_id: str, meta: Mapping[str, bytes], errors: Mapping[int, bytes]) -> dict[str, Any]:
    """Swarm id, exact counts and at most ``summary_max_failures`` failed members (+ ``truncated``)."""
    c = counts(meta)
    limit = int(float(meta.get("max_err", b"0") or 0))
    failures = [json.loads(errors[i]) for i in sorted(errors)][:limit]
    stop_after = int(float(meta.get("stop_after", b"0") or 0))
    name = meta.get("name", b"").decode() or None
    return {
        "swarm_id": swarm_id,
        "name": name,
        **c,
        "stop_after_n_failures": stop_after or None,
        "failures": failures,
        "truncated": c["failed"] > len(failures),
    }
