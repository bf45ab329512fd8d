"""The records the state scripts return, typed: transitions, admitted members, pool settlements, what the
reaper finds, owner records. Pure parsing of script replies; no Redis here.

Layer: ``state`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Admitted:
    """A member the caller must publish: its index, its encoded signature and its publish epoch."""

    index: int
    blob: bytes
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class Revoke:
    """A member the caller must revoke, and the step of it that holds the token (``FINAL_STEP``: its own id)."""

    index: int
    step: int


@dataclass(frozen=True, slots=True)
class Flow:
    """What a transition leaves to settle with the pool and the due index (see ``_lib.lua`` ``flow``)."""

    #: Members the swarm could admit now if its pool granted tokens.
    pool_want: int = 0
    #: When a rate lets the swarm's next member in (the state Redis's clock), else ``None``.
    wake_at: float | None = None
    #: The swarm just finished (it wants nothing from its pool any more).
    ended: bool = False
    #: Pool grants given back (members that ended, grants it could not use).
    released: list[str] = field(default_factory=list)
    #: The swarm's pool ("" when it has none) and its weight there.
    pool: str = ""
    weight: int = 1

    @classmethod
    def parse(cls, raw: Any) -> Flow:
        if not raw:
            return cls()
        wake = text(raw[1])
        released = [text(x) for x in raw[3]]
        pool, weight = (text(raw[4]), int(text(raw[5]))) if len(raw) > 5 else ("", 1)
        return cls(int(text(raw[0]) or 0), float(wake) if wake else None, bool(int(raw[2])), released, pool, weight)

    def __bool__(self) -> bool:
        return bool(self.pool_want or self.wake_at is not None or self.ended or self.released)


@dataclass(frozen=True, slots=True)
class Transition:
    """What a state transition did and what the caller must do next.

    ``admitted`` are the members the caller must publish; ``fin`` is ``"s"``, ``"f"`` or ``"c"`` when
    this caller won the finalization decision; ``revoke`` lists members to revoke; ``flow`` what to
    settle with the swarm's pool and the due index.
    """

    status: str
    fin: str = ""
    admitted: list[Admitted] = field(default_factory=list)
    ctx: bytes | None = None
    revoke: list[Revoke] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    flow: Flow = field(default_factory=Flow)


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def pair(value: Any) -> tuple[int, int]:
    """``'12'`` -> (12, 0); ``'12:3'`` -> (12, 3)."""
    head, _, tail = text(value).partition(":")
    return int(head), int(tail or 0)


#: What ``receive.lua`` answers: verdict (``ok``, ``drop``, ``dup``, ``ignore``, ``unknown``), the pool grants a
#: member dropped at receipt gave back, and its swarm's pool.
Receipt = tuple[str, list[str], str]


def receipt_from(reply: Sequence[Any]) -> Receipt:
    released = [text(x) for x in reply[1]] if len(reply) > 1 and reply[1] else []
    return text(reply[0]), released, text(reply[2]) if len(reply) > 2 else ""


def transition_from(reply: Sequence[Any]) -> Transition:
    status = text(reply[0])
    if len(reply) < 2:
        return Transition(status)
    fin = text(reply[1]) if len(reply) > 1 and reply[1] else ""
    ids = reply[2] if len(reply) > 2 else []
    sigs = reply[3] if len(reply) > 3 else []
    ctx = reply[4] if len(reply) > 4 and reply[4] else None
    revoke = [Revoke(*pair(x)) for x in reply[5]] if len(reply) > 5 and reply[5] else []
    flow = Flow.parse(reply[6]) if len(reply) > 6 else Flow()
    extra = list(reply[7:]) if len(reply) > 7 else []
    pairs = [pair(x) for x in ids]
    admitted = [Admitted(index, bytes(blob), epoch) for (index, epoch), blob in zip(pairs, sigs, strict=True)]
    return Transition(status, fin, admitted, ctx, revoke, extra, flow)


@dataclass(frozen=True, slots=True)
class Renewal:
    """Reply of a lease renewal: the swarm's ``lease_s`` and members no longer running."""

    lease_s: float
    gone: set[int]


def renewal_from(reply: Sequence[Any]) -> Renewal | None:
    if text(reply[0]) != "ok":
        return None
    return Renewal(float(text(reply[1])), {int(text(x)) for x in reply[2]})


@dataclass(frozen=True, slots=True)
class PoolSettlement:
    """What a pool script handed out: grant ids per swarm (made at ``granted_at``, the pool's clock), when its
    rate lets the next token out, and its decisions about token passing (``docs/pools.md``)."""

    grants: dict[str, list[str]] = field(default_factory=dict)
    wake_at: float | None = None
    in_use: int = 0
    limit: int = 0
    dropped: int = 0
    granted_at: float = 0.0
    #: The swarm whose grants come with a pass budget: it alone uses the pool ("" for none).
    pass_to: str = ""
    #: A swarm that must stop passing tokens on ("" for none).
    stop: str = ""
    #: The pool's generation of these decisions (a swarm ignores ones older than what it applied).
    generation: int = 0

    @classmethod
    def parse(cls, reply: Sequence[Any]) -> PoolSettlement:
        grants: dict[str, list[str]] = {}
        flat = reply[0]
        for i in range(0, len(flat), 2):
            grants.setdefault(text(flat[i]), []).append(text(flat[i + 1]))
        wake = text(reply[1])
        wake_at = float(wake) if wake else None
        return cls(
            grants,
            wake_at,
            int(reply[2]),
            int(float(text(reply[3]))),
            int(reply[4]),
            float(text(reply[5])),
            text(reply[6]),
            text(reply[7]),
            int(text(reply[8])),
        )


@dataclass(frozen=True, slots=True)
class PoolView:
    """A pool: its limit (0: unlimited), seconds between grants (0: no rate), tokens in use, waiting swarms."""

    name: str
    limit: int
    rate_int: float
    tat: float
    now: float
    #: grant id -> ``swarm id|granted at``.
    holders: dict[str, str]
    #: ``(swarm id, demand)`` in round-robin order.
    waiting: list[tuple[str, int]]
    #: The rate as it was set (``"10/s"``), or ``""``.
    rate: str = ""
    #: Grants it has made so far (its last grant id).
    grants_made: int = 0


@dataclass(frozen=True, slots=True)
class MemberRow:
    """One member as ``members.lua`` reads it: index, state letter (``""``: registered), signature, error."""

    index: int
    letter: str
    sig: bytes
    error: bytes | None


@dataclass(frozen=True, slots=True)
class Owner:
    """A token holder's record: publish epoch, step, lease token, flags (``p``, ``u``), dispatched at."""

    epoch: int = 0
    step: int = 0
    token: str = ""
    flags: str = ""
    t0: float = 0.0

    #: The pool grant the member holds ("" when its swarm has no pool).
    grant: str = ""

    @classmethod
    def parse(cls, raw: Any) -> Owner:
        parts = text(raw).split("|") if raw else []
        if len(parts) not in (5, 6):
            return cls()
        grant = parts[5] if len(parts) == 6 else ""
        return cls(int(parts[0] or 0), int(parts[1] or 0), parts[2], parts[3], float(parts[4] or 0), grant)


@dataclass(frozen=True, slots=True)
class Expired:
    """A member whose token deadline passed: its state letter (``d``/``r``), deadline, signature, owner."""

    index: int
    mstate: str
    deadline: float
    sig: bytes
    owner: Owner = field(default_factory=Owner)


@dataclass(frozen=True, slots=True)
class Reaped:
    """What :meth:`SwarmStore.reap` found in one swarm."""

    done: bool
    state: str = ""
    stale_fin: str = ""
    on_lost: str = "retry"
    expired: list[Expired] = field(default_factory=list)
    #: The state Redis's clock when it looked (deadlines are on that clock).
    now: float = 0.0
    lease_s: float = 60.0
    dispatch_timeout_s: float = 900.0
    #: The earliest deadline still ahead (the reaper looks again then); ``None``: none.
    next_at: float | None = None
    #: A rate holding members back lets the next one in now (the reaper admits it).
    rate_ready: bool = False
