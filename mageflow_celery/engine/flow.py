"""Flow control after a transition (SPEC §7): settle with the swarm's pool, wake rates on time.

A transition's ``flow`` says what the swarm wants from its pool (members it could admit), which grants it
gave back (members that ended, grants it could not use), whether it just finished, and when a rate lets
its next member in. :func:`settle` tells the pool (one script on the pool's slot), which hands its free
tokens out in weighted round-robin; each swarm that got grants admits that many members (one script on
its slot), which the caller follows like any transition. The protocol and why no token is ever leaked or
double-granted when a process dies between two steps are in ``docs/pools.md``.

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging

from ..errors import StateStoreError
from ..keys import pool_due_member
from ..state.records import PoolSettlement, Transition
from .runtime import Runtime

logger = logging.getLogger("mageflow_celery")

#: The reaper frees a pool token no member holds once its grant is older than this (a process died between
#: two steps of the protocol, docs/pools.md).
POOL_GRACE_S = 30.0
#: A swarm uses a grant only while it is younger than this (it gives older ones back): the reaper never frees
#: a grant a swarm may still use, so a process stalled between two steps cannot exceed the pool's limit.
#: The margin to POOL_GRACE_S covers the clock difference of two Redis Cluster masters.
GRANT_MAX_AGE_S = 10.0
#: Grants a swarm alone on its pool may pass on to its next members before it asks the pool again: it bounds
#: what a swarm can take ahead of a newcomer whose stop message was lost with a process (docs/pools.md).
PASS_BUDGET = 64


def settle(rt: Runtime, swarm_id: str, tr: Transition) -> list[tuple[str, Transition]]:
    """Settle ``tr``'s flow; returns the transitions of swarms that got pool grants, for the caller to follow."""
    flow = tr.flow
    if flow.wake_at is not None:
        rt.store.schedule(swarm_id, flow.wake_at)  # the reaper admits the next member at its rate's slot
    if not flow.pool or not (flow.released or flow.pool_want or flow.ended):
        return []
    want = 0 if flow.ended else flow.pool_want
    settled = rt.store.pool_settle(flow.pool, swarm_id, want, flow.weight, flow.released)
    return apply_grants(rt, flow.pool, settled)


def apply_grants(rt: Runtime, pool: str, settled: PoolSettlement) -> list[tuple[str, Transition]]:
    """Hand each swarm its grants (it admits that many; the pool's only swarm may pass them on), tell a swarm
    that must stop passing tokens on; grants a gone swarm cannot take go back."""
    if settled.wake_at is not None:
        rt.store.schedule(pool_due_member(pool), settled.wake_at)
    if settled.stop and settled.stop not in settled.grants:  # a grantee learns it with its grants
        try:
            rt.store.stop_passing(settled.stop, settled.generation)
        except StateStoreError:  # a lost stop: it passes at most its budget on (docs/pools.md); grants go on
            logger.warning("pool %s: telling swarm %s to stop passing failed", pool, settled.stop, exc_info=True)
    out: list[tuple[str, Transition]] = []
    orphans: list[str] = []
    for swarm_id, grants in settled.grants.items():
        tr = rt.store.grant(
            swarm_id,
            grants,
            settled.granted_at,
            GRANT_MAX_AGE_S,
            want_ctx=rt.cached_ctx(swarm_id) is None,
            pass_budget=PASS_BUDGET if swarm_id == settled.pass_to else 0,
            generation=settled.generation,
        )
        if tr.status == "unknown":
            orphans += tr.flow.released
        else:
            out.append((swarm_id, tr))
    if orphans:
        logger.debug("pool %s: %d grant(s) to expired swarms go back", pool, len(orphans))
        out += apply_grants(rt, pool, rt.store.pool_settle(pool, "", 0, 1, orphans))
    return out


def wake_pool(rt: Runtime, pool: str) -> list[tuple[str, Transition]]:
    """A pool's rate let its next token out: hand it to the waiting swarms."""
    return apply_grants(rt, pool, rt.store.pool_settle(pool, "", 0, 1, []))
