"""A throwaway ``redis-server`` that speaks TLS only, with a certificate authority made at start.

The CA, the server certificate (for ``127.0.0.1`` and ``localhost``) and a client certificate are
made with ``trustme`` (a test dependency, imported only when a server starts) and written to the
server's temporary directory. The plain TCP port is disabled (``--port 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from ._redis import LOOPBACK, RedisServer, _probe_client


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a :class:`RedisTLSServer`: its CA, its own certificate, and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


class RedisTLSServer(RedisServer):
    """One ``redis-server --tls-port`` on a free loopback port, trusted through a CA of its own.

    Args:
        require_client_cert: Ask clients for a certificate signed by the CA (``--tls-auth-clients yes``);
            :attr:`url` then carries ``ssl_certfile`` and ``ssl_keyfile``.
        executable: Name or path of the ``redis-server`` binary (built with TLS, as Debian's is).
        start_timeout_s: Seconds to wait for the server to answer ``PING``.

    Example:
        >>> with RedisTLSServer() as server:  # doctest: +SKIP
        ...     connect(server.url).ping()
        True
    """

    def __init__(self, *, require_client_cert: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.require_client_cert = require_client_cert
        self.tls: TLSFiles | None = None

    @property
    def url(self) -> str:
        """``rediss://127.0.0.1:<port>/0?ssl_cert_reqs=required&ssl_ca_certs=<ca file>`` (plus the client files)."""
        if not self.port or self.tls is None:
            raise RuntimeError("the server has not been started")
        query = f"ssl_cert_reqs=required&ssl_ca_certs={quote(str(self.tls.ca), safe='')}"
        if self.require_client_cert:
            query += f"&ssl_certfile={quote(str(self.tls.client_cert), safe='')}"
            query += f"&ssl_keyfile={quote(str(self.tls.client_key), safe='')}"
        return f"rediss://{LOOPBACK}:{self.port}/0?{query}"

    def client(self) -> redis.Redis:
        """Return a new TLS client that trusts the server's CA; the caller closes it."""
        return redis.Redis(host=LOOPBACK, port=self.port, **self._tls_kwargs())

    def stop(self) -> None:
        super().stop()
        self.tls = None

    def __repr__(self) -> str:
        return f"<RedisTLSServer port={self.port} running={self.running}>"

    def _spawn(self, binary: str) -> None:
        assert self.dir is not None
        self.tls = _make_certificates(self.dir)
        super()._spawn(binary)

    def _command(self, binary: str) -> list[str]:
        assert self.tls is not None
        command = super()._command(binary)
        command[command.index("--port") + 1] = "0"  # TLS only
        return [
            *command,
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.tls.server_cert),
            "--tls-key-file",
            str(self.tls.server_key),
            "--tls-ca-cert-file",
            str(self.tls.ca),
            "--tls-auth-clients",
            "yes" if self.require_client_cert else "no",
        ]

    def _tls_kwargs(self) -> dict[str, Any]:
        assert self.tls is not None
        return {
            "ssl": True,
            "ssl_cert_reqs": "required",
            "ssl_ca_certs": str(self.tls.ca),
            "ssl_certfile": str(self.tls.client_cert),
            "ssl_keyfile": str(self.tls.client_key),
        }

    def _probe(self) -> redis.Redis:
        return _probe_client(self.port, **self._tls_kwargs())


def _make_certificates(directory: Path) -> TLSFiles:
    """Write a fresh CA, a server certificate for the loopback address and a client certificate."""
    try:
        import trustme  # test dependency, needed only by this helper
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("RedisTLSServer needs the 'trustme' package (pip install trustme)") from exc
    ca = trustme.CA()
    server = ca.issue_cert(LOOPBACK, "localhost")
    client = ca.issue_cert("mageflow-test-client")
    files = TLSFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    server.private_key_pem.write_to_path(str(files.server_key))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    return files
