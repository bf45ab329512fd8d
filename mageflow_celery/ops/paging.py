"""One page of the swarm list, filtered by state or name, read from the indexes a page at a time.

The list is the index of unfinished swarms (newest first) followed by the index of finished swarms
within their result TTL (most recently finished first). A page without a name search reads its rows
only (two round trips), whatever the number of swarms. A state filter that is not a whole index, or a
name search, walks the index in chunks reading three small fields per swarm until the page is full,
and stops after :data:`SCAN_MAX` swarms (the page then says so).

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

from ..client.result import PROGRESS_FIELDS, SwarmProgress, progress_from_meta
from ..engine.runtime import runtime_for
from ..state.store import SwarmStore

#: Swarm states a page can be filtered by, plus ``active`` (every unfinished one) and ``finished``.
STATE_FILTERS = ("active", "finished", "pending", "running", "paused", "succeeded", "failed", "cancelled")
#: Swarms read per round trip while filtering or searching.
SCAN_CHUNK = 500
#: Most swarms one filtered or searched page looks at.
SCAN_MAX = 20_000
#: Largest page.
PAGE_MAX = 500
_UNFINISHED = ("active", "pending", "running", "paused")
_FINISHED = ("finished", "succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class SwarmPage:
    """One page of swarms, and what the pager needs."""

    swarms: list[SwarmProgress]
    offset: int
    limit: int
    #: How many swarms the (unfiltered) list holds; ``None`` when filtered or searched.
    total: int | None
    #: Whether a next page exists.
    more: bool
    #: ``False`` when a filter or search stopped after :data:`SCAN_MAX` swarms.
    complete: bool = True


def _sources(state: str | None) -> list[bool]:
    """The indexes to walk, in order (``False``: unfinished, ``True``: finished)."""
    if state in _UNFINISHED:
        return [False]
    if state in _FINISHED:
        return [True]
    return [False, True]


def swarm_page(
    app: Celery, *, state: str | None = None, q: str | None = None, offset: int = 0, limit: int = 50
) -> SwarmPage:
    """A page of the swarm list: ``state`` one of :data:`STATE_FILTERS`, ``q`` a piece of the name (any
    case) or the start of the id.

    Raises:
        ValueError: an unknown state, a negative offset or a limit outside 1..500.
        StateStoreError: the state Redis cannot be reached.

    Example:
        >>> page = swarm_page(app, state="running", limit=20)
        >>> [p.swarm_id for p in page.swarms], page.more
    """
    if state is not None and state not in STATE_FILTERS:
        raise ValueError(f"unknown state {state!r}; one of {', '.join(STATE_FILTERS)}")
    if offset < 0 or not 1 <= limit <= PAGE_MAX:
        raise ValueError(f"offset must be >= 0 and limit 1..{PAGE_MAX} (got {offset}, {limit})")
    store = runtime_for(app).store
    if not q and state in (None, "active", "finished"):
        return _plain_page(store, _sources(state), offset, limit)
    return _scanned_page(store, _sources(state), state, (q or "").strip().lower(), offset, limit)


def _plain_page(store: SwarmStore, sources: list[bool], offset: int, limit: int) -> SwarmPage:
    sizes = [store.count_indexed(finished) for finished in sources]
    rows: dict[str, SwarmProgress] = {}
    skip, want = offset, limit
    for finished, size in zip(sources, sizes, strict=True):
        if want <= 0:
            break
        if skip >= size:
            skip -= size
            continue
        for swarm_id, meta in store.indexed(PROGRESS_FIELDS, finished=finished, offset=skip, limit=want):
            rows.setdefault(swarm_id, progress_from_meta(swarm_id, meta))  # moving between indexes: once
        want, skip = limit - len(rows), 0
    total = sum(sizes)
    return SwarmPage(list(rows.values()), offset, limit, total, offset + limit < total)


def _matches(swarm_id: str, meta: dict[str, bytes], state: str | None, q: str) -> bool:
    if state in STATE_FILTERS[2:]:
        current = meta["state"].decode()
        if current == "running" and meta.get("paused") == b"1":
            current = "paused"
        if current != state:
            return False
    return not q or q in meta.get("name", b"").decode().lower() or swarm_id.startswith(q)


def _scanned_page(
    store: SwarmStore, sources: list[bool], state: str | None, q: str, offset: int, limit: int
) -> SwarmPage:
    found: list[str] = []
    scanned, complete = 0, True
    for finished in sources:
        position = 0
        while len(found) <= offset + limit:
            if scanned >= SCAN_MAX:
                complete = False
                break
            chunk = store.indexed(("name", "paused"), finished=finished, offset=position, limit=SCAN_CHUNK)
            if not chunk:
                break
            position += len(chunk)  # stale entries were removed from the index: they moved nothing
            scanned += len(chunk)
            found += [swarm_id for swarm_id, meta in chunk if _matches(swarm_id, meta, state, q)]
    ids = list(dict.fromkeys(found))[offset : offset + limit]
    metas = store.metas(ids, PROGRESS_FIELDS)
    rows = [progress_from_meta(swarm_id, meta) for swarm_id, meta in zip(ids, metas, strict=True) if "state" in meta]
    return SwarmPage(rows, offset, limit, None, len(found) > offset + limit, complete)


__all__ = ["PAGE_MAX", "SCAN_CHUNK", "SCAN_MAX", "STATE_FILTERS", "SwarmPage", "swarm_page"]
