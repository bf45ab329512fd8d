"""The Lua scripts, one file per state transition, loaded once at import.

Each ``<name>.lua`` here works on the keys of one swarm and is prefixed with ``_lib.lua`` (shared
helpers); each ``<group>/<name>.lua`` in a sub-folder works on another group's keys (``due/``: the
index of swarms the reaper must look at) and is prefixed with that folder's ``_lib.lua`` if it has one.
All are registered once per Redis client by :class:`mageflow_celery.state.store.SwarmStore`.

Layer: ``state`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import sys
from importlib import resources

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # moved in 3.11; importlib.abc's name warns from 3.13 on and goes in 3.14
    from importlib.abc import Traversable


def _load(folder: Traversable, prefix: str) -> dict[str, str]:
    lib_file = folder / "_lib.lua"
    lib = lib_file.read_text(encoding="utf-8") + "\n" if lib_file.is_file() else ""
    return {
        prefix + entry.name[: -len(".lua")]: lib + entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".lua") and not entry.name.startswith("_")
    }


_HERE = resources.files(__name__)

#: Script name (``report``, ``due/peek``, ...) -> full Lua source (its folder's library prepended).
SOURCES: dict[str, str] = {
    **_load(_HERE, ""),
    **{
        name: src
        for sub in _HERE.iterdir()
        if sub.is_dir() and not sub.name.startswith("_")
        for name, src in _load(sub, f"{sub.name}/").items()
    },
}
