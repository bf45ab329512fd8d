"""A throwaway Redis Sentinel setup: a master, optional replicas, and one Sentinel monitoring them.

Every process is a :class:`~mageflow_celery.testing.RedisServer` on a free loopback port; the
Sentinel is ``redis-server <conf> --sentinel`` (no separate ``redis-sentinel`` binary is needed).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import redis

from ._redis import DEFAULT_START_TIMEOUT_S, LOOPBACK, RedisServer, _poll, _require_binary

#: Quorum of the single Sentinel, and how fast it declares a silent master down (ms).
_SENTINEL_CONFIG = """\
port {port}
bind {host}
dir {dir}
sentinel monitor {name} {host} {master_port} 1
sentinel down-after-milliseconds {name} 1000
sentinel failover-timeout {name} 10000
"""


class _SentinelProcess(RedisServer):
    """``redis-server sentinel.conf --sentinel`` monitoring one master (Sentinel rewrites its config file)."""

    def __init__(self, master_name: str, master_port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.master_name = master_name
        self.master_port = master_port

    def _command(self, binary: str) -> list[str]:
        assert self.dir is not None
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            _SENTINEL_CONFIG.format(
                port=self.port, host=LOOPBACK, dir=self.dir, name=self.master_name, master_port=self.master_port
            )
        )
        return [binary, str(conf), "--sentinel"]


class RedisSentinel:
    """A master ``redis-server``, ``replicas`` replicas of it, and one Sentinel watching them, for tests.

    :meth:`start` returns once the Sentinel knows the master (and every replica, with a live link).

    Args:
        master_name: The name the Sentinel monitors the master under (Celery's ``master_name``).
        replicas: Number of replicas (one makes ``SENTINEL FAILOVER`` possible).
        executable: Name or path of the ``redis-server`` binary.
        start_timeout_s: Seconds each process, and then the Sentinel's discovery, may take.

    Example:
        >>> with RedisSentinel(replicas=1) as sentinel:  # doctest: +SKIP
        ...     connect(sentinel.url, {"master_name": sentinel.master_name}).set("k", "v")
        True
    """

    def __init__(
        self,
        master_name: str = "mymaster",
        *,
        replicas: int = 0,
        executable: str = "redis-server",
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        self.master_name = master_name
        self.replicas = replicas
        self.executable = executable
        self.start_timeout_s = start_timeout_s
        self.servers: list[RedisServer] = []
        self.sentinel: RedisServer | None = None

    @property
    def url(self) -> str:
        """``sentinel://127.0.0.1:<sentinel port>/0`` (the master's name is :attr:`master_name`)."""
        if self.sentinel is None:
            raise RuntimeError("the sentinel setup has not been started")
        return f"sentinel://{LOOPBACK}:{self.sentinel.port}/0"

    @property
    def transport_options(self) -> dict[str, Any]:
        """Celery-style transport options naming the master: ``{"master_name": ...}``."""
        return {"master_name": self.master_name}

    def start(self) -> RedisSentinel:
        """Start the master, the replicas and the Sentinel; wait until the Sentinel knows all of them.

        Returns:
            This setup, started.

        Raises:
            RuntimeError: ``redis-server`` is missing, a process did not start, or the Sentinel did not
                discover the master and replicas in time.
        """
        if self.servers:
            raise RuntimeError("the sentinel setup is already started")
        _require_binary(self.executable)
        try:
            self._start_servers()
            self.sentinel = _SentinelProcess(
                self.master_name, self.servers[0].port, executable=self.executable, start_timeout_s=self.start_timeout_s
            ).start()
            what = f"the Sentinel to know master {self.master_name!r} and {self.replicas} live replica(s)"
            _poll(self._discovered, self.start_timeout_s, what)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the Sentinel and every server, and remove their directories; calling it again does nothing."""
        sentinel, self.sentinel = self.sentinel, None
        if sentinel is not None:
            sentinel.stop()
        servers, self.servers = self.servers, []
        for server in servers:
            server.stop()

    def master_port(self) -> int:
        """The port of the master according to the Sentinel (``SENTINEL MASTER``, what redis-py reads).

        It changes once a failover is complete; during one, ``SENTINEL GET-MASTER-ADDR-BY-NAME``
        already names the promoted replica while this still names the old master.
        """
        if self.sentinel is None:
            raise RuntimeError("the sentinel setup has not been started")
        client = self.sentinel._probe()
        try:
            master: dict[str, Any] = client.sentinel_master(self.master_name)  # type: ignore[assignment]
        finally:
            client.close()
        return int(master["port"])

    def __enter__(self) -> RedisSentinel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        ports = [server.port for server in self.servers]
        sentinel = self.sentinel.port if self.sentinel else None
        return f"<RedisSentinel master_name={self.master_name!r} servers={ports} sentinel={sentinel}>"

    def _start_servers(self) -> None:
        # replicas sync at once (Redis 7 waits 5 s for more replicas before a diskless sync by default)
        master = RedisServer(
            executable=self.executable,
            start_timeout_s=self.start_timeout_s,
            extra_args=["--repl-diskless-sync-delay", "0"],
        )
        self.servers.append(master)
        master.start()
        for _ in range(self.replicas):
            replica = RedisServer(
                executable=self.executable,
                start_timeout_s=self.start_timeout_s,
                extra_args=["--replicaof", LOOPBACK, str(master.port)],
            )
            self.servers.append(replica)
            replica.start()

    def _discovered(self) -> bool:
        assert self.sentinel is not None
        client = self.sentinel._probe()
        try:
            master: dict[str, Any] = client.sentinel_master(self.master_name)  # type: ignore[assignment]
            replicas: list[dict[str, Any]] = client.sentinel_slaves(self.master_name) if self.replicas else []
        except redis.RedisError:  # not ready yet (e.g. "No such master with that name"): poll again
            return False
        finally:
            client.close()
        live = [r for r in replicas if r.get("master-link-status") == "ok" and not r.get("is_disconnected")]
        return bool(master.get("is_master")) and len(live) >= self.replicas
