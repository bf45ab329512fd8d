"""Counting round trips to the state Redis per connection, with ``MONITOR``.

``INFO commandstats`` counts the commands Lua scripts run together with the ones clients send, so
it cannot tell round trips apart. ``MONITOR`` can: it prints each command with the client's address,
or ``lua`` for a command a script ran. Connections are told apart by the ``client_name`` the client
and the worker put in their state-Redis URLs. ``MONITOR`` slows Redis down, so this runs in its own
untimed pass.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from typing import Any

import redis

from mageflow_celery.state.scripts import SOURCES

_END = b"mageflow-bench-monitor-end"
#: Scripts a worker runs on a timer, not per member (the reaper's look at the due index, lease renewal):
#: counted under ``<client name>-background``, apart from the hot path (SPEC P2 counts the hot path).
BACKGROUND_SCRIPTS = frozenset({"due/peek", "due/reschedule", "reap", "renew"})
#: Script SHA1 -> script name, to tell the scripts apart in ``EVALSHA`` lines.
SCRIPT_NAMES = {hashlib.sha1(src.encode()).hexdigest(): name for name, src in SOURCES.items()}


def command_name(rest: bytes) -> str:
    """``evalsha:<script>`` for a script call, else the lower-cased command name."""
    if not rest.startswith(b'"'):
        return "?"
    parts = rest.split(b'"', 4)
    cmd = parts[1].decode().lower()
    if cmd == "evalsha" and len(parts) > 3:
        return f"evalsha:{SCRIPT_NAMES.get(parts[3].decode(), parts[3].decode()[:8])}"
    return cmd


class MonitorCounter:
    """Counts commands on one server by client name while running (use as a context manager)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = redis.Redis.from_url(url)
        self._commands: Counter[tuple[str, str]] = Counter()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.by_name: Counter[str] = Counter()
        self.by_name_command: Counter[str] = Counter()

    def __enter__(self) -> MonitorCounter:
        self._thread = threading.Thread(target=self._read, name="bench-monitor", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("MONITOR did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        names = {c["addr"]: c.get("name") or "unnamed" for c in self._client.client_list()}
        names["lua"] = "lua"  # commands run by scripts
        self._client.echo(_END)
        assert self._thread is not None
        self._thread.join(60)
        for (addr, cmd), count in self._commands.items():
            name = names.get(addr, "closed")
            self.by_name_command[f"{name}:{cmd}"] += count
            background = cmd.startswith("evalsha:") and cmd.removeprefix("evalsha:") in BACKGROUND_SCRIPTS
            self.by_name[f"{name}-background" if background else name] += count
        self._client.close()

    def _read(self) -> None:
        pool = redis.ConnectionPool.from_url(self.url)
        conn = pool.get_connection()
        try:
            conn.send_command("MONITOR")
            conn.read_response()
            self._ready.set()
            while True:
                line = conn.read_response()
                if not isinstance(line, bytes) or _END in line:
                    return
                head, _, rest = line.partition(b"] ")
                addr = head.rpartition(b" ")[2].decode()
                cmd = command_name(rest)
                self._commands[(addr, cmd)] += 1
        finally:
            conn.disconnect()
            pool.disconnect()
