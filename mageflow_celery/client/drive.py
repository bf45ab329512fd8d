"""How the client follows a transition it performed: through the engine (members are published to
the broker), or through the eager driver (members run inline) in eager mode and ``Swarm.apply``.

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from ..eager import drive, inline_wanted
from ..engine.dispatch import follow
from ..engine.runtime import Runtime
from ..state.records import Transition


def advance(rt: Runtime, swarm_id: str, tr: Transition, terminate: bool = False) -> None:
    """Publish (or, eagerly, run) what ``tr`` admitted, revoke what it asks, finalize when it decided.

    Members admitted by a client call get deadlines: the swarm goes into the reaper's due index (a worker's
    report, the hot path, admits only in swarms that hold tokens, which are indexed already).
    """
    if inline_wanted(rt.app):
        drive(rt, swarm_id, tr, terminate)
        return
    if tr.admitted:
        rt.store.schedule_soon(swarm_id)
    follow(rt, swarm_id, tr, terminate)
