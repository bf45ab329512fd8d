"""Start and stop throwaway ``redis-server`` processes on free loopback ports, for tests.

Only the standard library and redis-py are used, so this works anywhere the ``redis-server`` (and,
for :class:`RedisCluster`, ``redis-cli``) binaries are installed; :class:`RedisTLSServer` also needs
the ``trustme`` package (test dependency) to make its certificates. Nothing is persisted: each server
runs with ``--save "" --appendonly no`` in its own temporary directory, removed on :meth:`stop`.

- :class:`RedisServer`: one server (``add_acl_user`` creates an ACL user on it);
- :class:`RedisTLSServer`: one server that speaks TLS only, with a CA made at start;
- :class:`RedisSentinel`: a master, optional replicas, and one Sentinel monitoring them;
- :class:`RedisCluster`: a cluster of three or more masters.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

#: Seconds a server (or a cluster) gets to answer after being spawned.
DEFAULT_START_TIMEOUT_S = 10.0
#: Seconds a server gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 10.0
#: Redis Cluster's bus listens on the client port plus this offset.
CLUSTER_BUS_PORT_OFFSET = 10000
#: Attempts to start on a fresh port when the chosen one was taken in the meantime.
START_ATTEMPTS = 3

LOOPBACK = "127.0.0.1"


def find_free_port() -> int:
    """Return a TCP port on the loopback interface that nothing listens on right now.

    The port is only free at the time of the call; :class:`RedisServer` retries on another port if it
    was taken in between.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _find_free_cluster_port() -> int:
    """Return a free port whose cluster-bus port (``port + 10000``) is valid and free too."""
    while True:
        port = find_free_port()
        if port + CLUSTER_BUS_PORT_OFFSET <= 65535 and _port_is_free(port + CLUSTER_BUS_PORT_OFFSET):
            return port


def _require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name!r} was not found on PATH; install Redis (e.g. `apt-get install redis-server`)")
    return path


def _probe_client(port: int, **kwargs: Any) -> redis.Redis:
    """A client for polling: short timeouts and no retries (redis-py retries refused connections for seconds)."""
    return redis.Redis(
        host=LOOPBACK, port=port, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0), **kwargs
    )


def _poll(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Call ``check`` with a short exponential backoff until it returns true; raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay_s = 0.005
    while not check():
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.1)


class RedisServer:
    """One ``redis-server`` process on a free loopback port, with no persistence.

    Args:
        port: Port to listen on; a free one is chosen when ``None``.
        executable: Name or path of the ``redis-server`` binary (to test another Redis version).
        extra_args: More command-line options, e.g. ``["--maxmemory", "10mb"]``.
        start_timeout_s: Seconds to wait for the server to answer ``PING``.

    Example:
        >>> with RedisServer() as server:  # doctest: +SKIP
        ...     redis.Redis.from_url(server.url).ping()
        True
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        executable: str = "redis-server",
        extra_args: Sequence[str] = (),
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        self._requested_port = port
        self.port = port or 0
        self.executable = executable
        self.extra_args = list(extra_args)
        self.start_timeout_s = start_timeout_s
        self.dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        if not self.port:
            raise RuntimeError("the server has not been started")
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        """Spawn the server and wait until it answers ``PING``.

        Returns:
            This server, started.

        Raises:
            RuntimeError: ``redis-server`` is missing, exited early, or did not answer in time.
        """
        if self._process is not None:
            raise RuntimeError("the server is already started")
        binary = _require_binary(self.executable)
        attempts = 1 if self._requested_port else START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            self.port = self._requested_port or self._pick_port()
            self.dir = Path(tempfile.mkdtemp(prefix=f"mageflow-redis-{self.port}-"))
            try:
                self._spawn(binary)
                return self
            except RuntimeError:
                log = self._log_tail()
                self.stop()
                if attempt == attempts or "Address already in use" not in log:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit in time) and remove its directory.

        Calling it again, or on a server that never started, does nothing.
        """
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def client(self) -> redis.Redis:
        """Return a new client on :attr:`url`; the caller closes it."""
        return redis.Redis.from_url(self.url)

    def add_acl_user(self, name: str, password: str, rules: Sequence[str] = ("~*", "&*", "+@all")) -> str:
        """Create (or reset) the ACL user ``name`` with ``password`` and return its URL.

        Args:
            name: The user name.
            password: Its password.
            rules: ACL rules besides ``on`` and the password (default: every key, channel and command).

        Returns:
            ``redis://<name>:<password>@127.0.0.1:<port>/0``, both percent-encoded.

        Example:
            >>> url = server.add_acl_user("worker", "s3cret")  # doctest: +SKIP
            >>> redis.Redis.from_url(url).acl_whoami()  # doctest: +SKIP
            'worker'
        """
        client = self._probe()
        try:
            client.execute_command("ACL", "SETUSER", name, "reset", "on", f">{password}", *rules)  # type: ignore[no-untyped-call]
        finally:
            client.close()
        return f"redis://{quote(name, safe='')}:{quote(password, safe='')}@{LOOPBACK}:{self.port}/0"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RedisServer port={self.port} running={self.running}>"

    def _pick_port(self) -> int:
        return find_free_port()

    def _command(self, binary: str) -> list[str]:
        assert self.dir is not None
        return [
            binary,
            "--port",
            str(self.port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            *self.extra_args,
        ]

    def _spawn(self, binary: str) -> None:
        assert self.dir is not None
        with open(self.dir / "redis.log", "wb") as log:
            self._process = subprocess.Popen(
                self._command(binary), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        _poll(self._answers_ping, self.start_timeout_s, f"{self.executable} on port {self.port} to answer PING")

    def _answers_ping(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            code = None if self._process is None else self._process.returncode
            raise RuntimeError(f"{self.executable} exited with code {code} on port {self.port}:\n{self._log_tail()}")
        client = self._probe()
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False
        finally:
            client.close()

    def _probe(self) -> redis.Redis:
        """A client for polling this server (short timeouts, no retries)."""
        return _probe_client(self.port)

    def _log_tail(self, max_chars: int = 2000) -> str:
        if self.dir is None:
            return ""
        try:
            return (self.dir / "redis.log").read_text(errors="replace")[-max_chars:]
        except OSError:
            return ""


class _ClusterNode(RedisServer):
    """A cluster-enabled :class:`RedisServer` whose bus port is free too."""

    def _pick_port(self) -> int:
        return _find_free_cluster_port()

    def _command(self, binary: str) -> list[str]:
        return [
            *super()._command(binary),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "5000",
        ]


class RedisCluster:
    """A Redis Cluster of ``masters`` loopback nodes with no replicas, for tests.

    Each node is a cluster-enabled :class:`RedisServer`; ``redis-cli --cluster create`` assigns the
    slots, and :meth:`start` returns once every node reports ``cluster_state:ok``.

    Args:
        masters: Number of master nodes (Redis requires at least 3).
        executable: Name or path of the ``redis-server`` binary.
        cli_executable: Name or path of the ``redis-cli`` binary.
        start_timeout_s: Seconds to wait for the nodes to start, and again for the cluster to be ok.

    Example:
        >>> with RedisCluster() as cluster:  # doctest: +SKIP
        ...     redis.cluster.RedisCluster.from_url(cluster.url).set("{t}:k", 1)
        True
    """

    def __init__(
        self,
        masters: int = 3,
        *,
        executable: str = "redis-server",
        cli_executable: str = "redis-cli",
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        self.masters = masters
        self.executable = executable
        self.cli_executable = cli_executable
        self.start_timeout_s = start_timeout_s
        self.nodes: list[RedisServer] = []

    @property
    def url(self) -> str:
        """URL of the first node (``redis://127.0.0.1:<port>/0``); cluster clients discover the others."""
        if not self.nodes:
            raise RuntimeError("the cluster has not been started")
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        """Ports of the nodes, in start order."""
        return [node.port for node in self.nodes]

    def start(self) -> RedisCluster:
        """Start the nodes, create the cluster, and wait until every node says ``cluster_state:ok``.

        Returns:
            This cluster, started.

        Raises:
            RuntimeError: A binary is missing, a node did not start, or the cluster did not form in time.
        """
        if self.nodes:
            raise RuntimeError("the cluster is already started")
        cli = _require_binary(self.cli_executable)
        _require_binary(self.executable)
        try:
            for _ in range(self.masters):
                node = _ClusterNode(executable=self.executable, start_timeout_s=self.start_timeout_s)
                self.nodes.append(node)
                node.start()
            self._create(cli)
            _poll(self._is_ok, self.start_timeout_s, "every cluster node to report cluster_state:ok")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node and remove their directories; calling it again does nothing."""
        nodes, self.nodes = self.nodes, []
        for node in nodes:
            node.stop()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RedisCluster ports={self.ports}>"

    def _create(self, cli: str) -> None:
        addresses = [f"{LOOPBACK}:{port}" for port in self.ports]
        command = [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"]
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.start_timeout_s * 3,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"`{' '.join(command)}` did not finish in {exc.timeout}s") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise RuntimeError(f"`{' '.join(command)}` failed with code {done.returncode}:\n{output}")

    def _is_ok(self) -> bool:
        return all(_cluster_state(node) == "ok" for node in self.nodes)


def _cluster_state(node: RedisServer) -> str | None:
    """``cluster_state`` from the node's ``CLUSTER INFO``, or ``None`` if it cannot tell yet."""
    client = _probe_client(node.port)
    try:
        info = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    except redis.RedisError:
        return None
    finally:
        client.close()
    if isinstance(info, dict):  # redis-py parses the reply into a dict
        state = info.get("cluster_state")
        return None if state is None else str(state)
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "cluster_state":
            return value.strip()
    return None
