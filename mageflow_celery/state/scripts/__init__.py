"""The Lua scripts, one file per state transition, loaded once at import.

Each ``<name>.lua`` is prefixed with ``_lib.lua`` (shared helpers) and registered once per Redis
client by :class:`mageflow_celery.state.store.SwarmStore`.
"""

from __future__ import annotations

from importlib import resources

_HERE = resources.files(__name__)
_LIB = (_HERE / "_lib.lua").read_text(encoding="utf-8")

#: Script name -> full Lua source (library prepended).
SOURCES: dict[str, str] = {
    entry.name[: -len(".lua")]: _LIB + "\n" + entry.read_text(encoding="utf-8")
    for entry in _HERE.iterdir()
    if entry.name.endswith(".lua") and not entry.name.startswith("_")
}
