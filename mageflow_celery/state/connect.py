"""Build the state Redis client from a URL, accepting the URLs Celery's Redis result backend accepts.

Accepted URLs (the spellings of ``celery/backends/redis.py``, plus redis-py's ``unix://``)::

    redis://[[user]:password@]host[:port][/db]            TCP; an ACL user and its password
    rediss://host:port/db?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem[&ssl_certfile=..&ssl_keyfile=..]
    unix:///path/to/redis.sock[?db=N]                     redis-py's spelling of a Unix socket
    redis+socket:///path/to/redis.sock[?virtual_host=N]   Celery's spelling of a Unix socket
    sentinel://[:password@]host:port[/db][;sentinel://host2:port2...]

``ssl_cert_reqs`` takes every spelling Celery takes: ``CERT_REQUIRED``, ``CERT_OPTIONAL``, ``CERT_NONE``
or ``required``, ``optional``, ``none``; it defaults to ``required``. A ``sentinel://`` URL names the
Sentinels; the master's name comes from the transport options (key ``master_name``, as in Celery's
``result_backend_transport_options`` / ``broker_transport_options``) or from a ``?master_name=``
query parameter. The password in a ``sentinel://`` URL is the master's (as in Celery); the
Sentinels' own credentials go in the ``sentinel_kwargs`` transport option. A node of a Redis Cluster
gives a :class:`redis.cluster.RedisCluster` client. Other query parameters are redis-py's
(``socket_timeout``, ``health_check_interval`` ...); an unknown one is an error.

:func:`parse_url` does no I/O (unit tests use it); :func:`connect` builds the client and checks that
the server answers.

Layer: ``state`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.cluster
import redis.sentinel
from redis.connection import URL_QUERY_ARGUMENT_PARSERS

from ..config import REDIS_URL_SCHEMES, SENTINEL_URL_SEPARATOR, redact_url
from ..errors import MageflowError, StateStoreError

__all__ = ["SSL_CERT_REQS", "RedisTarget", "connect", "parse_url"]

#: Every ``ssl_cert_reqs`` spelling Celery accepts, and the verify mode it means.
SSL_CERT_REQS: Mapping[str, ssl.VerifyMode] = MappingProxyType(
    {
        "CERT_REQUIRED": ssl.CERT_REQUIRED,
        "CERT_OPTIONAL": ssl.CERT_OPTIONAL,
        "CERT_NONE": ssl.CERT_NONE,
        "required": ssl.CERT_REQUIRED,
        "optional": ssl.CERT_OPTIONAL,
        "none": ssl.CERT_NONE,
    }
)
#: ``ssl_cert_reqs`` when a ``rediss://`` URL does not say (redis-py's default too: verify the server).
DEFAULT_SSL_CERT_REQS = "required"
#: Port of a Redis server, and of a Sentinel, when the URL gives none.
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379

#: redis-py's own URL query parameters and their converters (typed as ``object`` in redis-py).
_REDIS_PY_QUERY_PARAMS = cast("Mapping[str, Callable[[str], Any]]", URL_QUERY_ARGUMENT_PARSERS)
_SSL_FILE_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_SSL_PARAMS = ("ssl_cert_reqs", *_SSL_FILE_PARAMS)
_SOCKET_SCHEMES = frozenset({"unix", "redis+socket"})
#: Query parameters naming the database (``virtual_host`` is kombu's and Celery's name).
_DB_PARAMS = ("db", "virtual_host")
#: Transport options read for a ``sentinel://`` URL (Celery's names).
_SENTINEL_OPTIONS = ("master_name", "sentinel_kwargs", "min_other_sentinels", "username", "password")


@dataclass(frozen=True)
class RedisTarget:
    """What a state Redis URL names, ready to build a client from.

    ``kwargs`` are :class:`redis.Redis` keyword arguments (for a Sentinel URL: those of the
    connections to the master). ``sentinels`` is empty unless the URL is a ``sentinel://`` one.
    """

    #: The URL with every password replaced by ``***``, for messages.
    where: str
    kwargs: dict[str, Any]
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str | None = None
    #: Keyword arguments of the connections to the Sentinels; ``None`` = redis-py's default.
    sentinel_kwargs: dict[str, Any] | None = None
    min_other_sentinels: int = 0


def parse_url(url: str, transport_options: Mapping[str, Any] | None = None) -> RedisTarget:
    """Read a state Redis URL (no I/O).

    Args:
        url: A ``redis://``, ``rediss://``, ``unix://``, ``redis+socket://`` or ``sentinel://`` URL.
        transport_options: Celery-style transport options; read for ``sentinel://`` URLs only
            (``master_name``, ``sentinel_kwargs``, ``min_other_sentinels``, ``username``, ``password``).

    Returns:
        The target: client keyword arguments, and the Sentinels when there are some.

    Raises:
        MageflowError: The URL is not a Redis URL, or has an invalid or unknown part.

    Example:
        >>> parse_url("rediss://:pw@cache:6380/2?ssl_cert_reqs=CERT_REQUIRED").kwargs["ssl_cert_reqs"]
        <VerifyMode.CERT_REQUIRED: 2>
    """
    if _scheme(url) == "sentinel":
        return _parse_sentinel(url, transport_options or {})
    return RedisTarget(redact_url(url), _server_kwargs(url))


def connect(url: str, transport_options: Mapping[str, Any] | None = None) -> redis.Redis:
    """A client of the state Redis named by ``url``, checked to answer.

    A ``sentinel://`` URL gives a client of the current master that follows a failover; the node of
    a Redis Cluster gives a :class:`redis.cluster.RedisCluster` client.

    Args:
        url: See :func:`parse_url` (and the module docstring) for the accepted spellings.
        transport_options: Celery-style transport options (``master_name`` for a Sentinel URL).

    Returns:
        A client; the caller closes it.

    Raises:
        MageflowError: The URL is invalid, or names a TLS file that does not exist.
        StateStoreError: The server (or the Sentinels, or the master) cannot be reached.

    Example:
        >>> client = connect("sentinel://:pw@10.0.0.5:26379/0", {"master_name": "mymaster"})  # doctest: +SKIP
        >>> client.set("k", "v")  # doctest: +SKIP
        True
    """
    target = parse_url(url, transport_options)
    _check_tls_files(target)
    try:
        if target.sentinels:
            return _sentinel_client(target)
        client = redis.Redis(**target.kwargs)
    except TypeError as exc:  # a query parameter redis-py does not know
        raise MageflowError(f"invalid state Redis URL {redact_url(url)!r}: {exc}") from None
    if _is_cluster(client, target):
        client.close()
        return _cluster_client(target)
    return client


# -- reading URLs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parts:
    host: str | None
    port: int | None
    username: str | None
    password: str | None
    path: str
    query: dict[str, str]


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in REDIS_URL_SCHEMES:
        raise MageflowError(
            f"not a Redis URL: {redact_url(url)!r}; expected redis://, rediss://, unix://, redis+socket:// "
            "or sentinel://"
        )
    return scheme


def _parts(url: str) -> _Parts:
    split = urlsplit("http://" + url.partition("://")[2])  # HTTP semantics for every scheme, as kombu does
    try:
        port = split.port
    except ValueError as exc:
        raise MageflowError(f"invalid port in the Redis URL {redact_url(url)!r}") from exc
    return _Parts(
        host=split.hostname or None,
        port=port,
        username=unquote(split.username or "") or None,
        password=unquote(split.password or "") or None,
        path=unquote(split.path),
        query=dict(parse_qsl(split.query, keep_blank_values=True)),
    )


def _credentials(parts: _Parts) -> dict[str, Any]:
    return {key: value for key, value in (("username", parts.username), ("password", parts.password)) if value}


def _db(value: str, url: str) -> int:
    text = value.strip("/") or "0"
    try:
        return int(text)
    except ValueError:
        raise MageflowError(f"the database in {redact_url(url)!r} must be a number, not {text!r}") from None


def _pop_db(query: dict[str, str], default: str, url: str) -> int:
    """The database: a ``db`` (or ``virtual_host``) query parameter wins over ``default`` (the path)."""
    value = default
    for key in _DB_PARAMS:
        value = query.pop(key, value)
    return _db(value, url)


def _server_kwargs(url: str) -> dict[str, Any]:
    scheme, parts = _scheme(url), _parts(url)
    query = dict(parts.query)
    kwargs = _credentials(parts)
    if scheme in _SOCKET_SCHEMES:
        if not parts.path:
            raise MageflowError(f"{redact_url(url)!r} names no socket path (write {scheme}:///path/to/redis.sock)")
        kwargs.update(unix_socket_path=parts.path, db=_pop_db(query, "0", url))
    else:
        kwargs.update(
            host=parts.host or "localhost", port=parts.port or DEFAULT_PORT, db=_pop_db(query, parts.path, url)
        )
    if "master_name" in query:
        raise MageflowError(f"master_name is for sentinel:// URLs only, not {redact_url(url)!r}")
    kwargs.update(_tls_kwargs(scheme, query, url))
    kwargs.update(_query_kwargs(query, url))
    return kwargs


def _tls_kwargs(scheme: str, query: dict[str, str], url: str) -> dict[str, Any]:
    """TLS keyword arguments of a ``rediss://`` URL (popped from ``query``); TLS parameters elsewhere are errors."""
    present = [key for key in _SSL_PARAMS if key in query]
    if scheme != "rediss":
        if present:
            raise MageflowError(f"{', '.join(present)} need a rediss:// URL (TLS), not {redact_url(url)!r}")
        return {}
    kwargs: dict[str, Any] = {
        "ssl": True,
        "ssl_cert_reqs": _cert_reqs(query.pop("ssl_cert_reqs", DEFAULT_SSL_CERT_REQS)),
    }
    for key in _SSL_FILE_PARAMS:
        value = query.pop(key, "")
        if value:
            kwargs[key] = value
    return kwargs


def _cert_reqs(value: str) -> ssl.VerifyMode:
    try:
        return SSL_CERT_REQS[value]
    except KeyError:
        raise MageflowError(
            f"invalid ssl_cert_reqs {value!r} in a rediss:// URL; use one of {', '.join(SSL_CERT_REQS)}"
        ) from None


def _query_kwargs(query: Mapping[str, str], url: str) -> dict[str, Any]:
    """Query parameters as redis-py's ``from_url`` takes them: its typed ones (``socket_timeout`` ...)
    converted, any other (``client_name`` ...) passed on as a string (redis-py refuses unknown names when
    the client is built)."""
    kwargs: dict[str, Any] = {}
    for key, value in query.items():
        parser = _REDIS_PY_QUERY_PARAMS.get(key, str)
        try:
            kwargs[key] = parser(value)
        except (TypeError, ValueError):
            raise MageflowError(f"invalid value {value!r} for {key!r} in {redact_url(url)!r}") from None
    return kwargs


def _parse_sentinel(url: str, transport_options: Mapping[str, Any]) -> RedisTarget:
    chunks = [chunk.strip() for chunk in url.split(SENTINEL_URL_SEPARATOR) if chunk.strip()]
    query: dict[str, str] = {}
    sentinels: list[tuple[str, int]] = []
    for chunk in chunks:
        if _scheme(chunk) != "sentinel":
            raise MageflowError(f"every server of {redact_url(url)!r} must be a sentinel:// URL")
        parts = _parts(chunk)
        sentinels.append((parts.host or "localhost", parts.port or DEFAULT_SENTINEL_PORT))
        query.update(parts.query)
    first = _parts(chunks[0])  # the master's db and credentials come from the first server, as in Celery
    options = {key: transport_options[key] for key in _SENTINEL_OPTIONS if key in transport_options}
    master_name = _master_name(query.pop("master_name", None), options.get("master_name"), url)
    kwargs = {**_credentials(first), "db": _pop_db(query, first.path, url)}
    kwargs.update({key: options[key] for key in ("username", "password") if options.get(key)})
    kwargs.update(_tls_kwargs("sentinel", query, url))
    kwargs.update(_query_kwargs(query, url))
    return RedisTarget(
        where=f"{redact_url(url)} (master {master_name!r})",
        kwargs=kwargs,
        sentinels=tuple(sentinels),
        master_name=master_name,
        sentinel_kwargs=dict(options["sentinel_kwargs"]) if options.get("sentinel_kwargs") else None,
        min_other_sentinels=int(options.get("min_other_sentinels") or 0),
    )


def _master_name(from_url: str | None, from_options: Any, url: str) -> str:
    if from_url and from_options and from_url != from_options:
        raise MageflowError(
            f"{redact_url(url)!r} says master_name={from_url!r} but the transport options say {from_options!r}"
        )
    name = from_url or from_options
    if not name:
        raise MageflowError(
            f"{redact_url(url)!r} is a Sentinel URL but names no master: set master_name in the transport "
            "options (result_backend_transport_options, broker_transport_options or "
            "mageflow_redis_transport_options), or add ?master_name=<name> to the URL"
        )
    return str(name)


# -- building clients --------------------------------------------------------------------------------


def _check_tls_files(target: RedisTarget) -> None:
    for key in _SSL_FILE_PARAMS:
        path = target.kwargs.get(key)
        if path and not os.path.isfile(path):
            raise MageflowError(f"{key} names a file that does not exist: {path!r} (in {target.where!r})")


def _unreachable(target: RedisTarget, exc: BaseException) -> StateStoreError:
    hint = ""
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        hint = " (the server's TLS certificate is not signed by ssl_ca_certs, or does not name this host)"
    return StateStoreError(f"cannot reach the state Redis at {target.where}: {exc}{hint}")


def _is_cluster(client: redis.Redis, target: RedisTarget) -> bool:
    try:
        return bool(client.info("cluster").get("cluster_enabled") == 1)
    except redis.RedisError as exc:
        client.close()
        if isinstance(exc, redis.ResponseError) and "not allowed in cluster mode" in str(exc):
            raise _cluster_db_error(target) from exc  # the SELECT of a db other than 0 was refused
        raise _unreachable(target, exc) from exc


def _cluster_db_error(target: RedisTarget) -> MageflowError:
    return MageflowError(f"{target.where!r} is a Redis Cluster node: a cluster has database 0 only")


def _cluster_client(target: RedisTarget) -> redis.Redis:
    kwargs = dict(target.kwargs)
    if kwargs.pop("db", 0) != 0:
        raise _cluster_db_error(target)
    if "unix_socket_path" in kwargs:
        raise MageflowError(f"{target.where!r} is a Redis Cluster node: connect to a cluster over TCP")
    try:
        return redis.cluster.RedisCluster(**kwargs)  # type: ignore[return-value]  # not a redis.Redis, same commands
    except redis.RedisError as exc:
        raise _unreachable(target, exc) from exc


def _sentinel_client(target: RedisTarget) -> redis.Redis:
    assert target.master_name is not None
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        min_other_sentinels=target.min_other_sentinels,
        sentinel_kwargs=target.sentinel_kwargs,
        **target.kwargs,
    )
    client: redis.Redis = sentinel.master_for(target.master_name)  # type: ignore[no-untyped-call]
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise _unreachable(target, exc) from exc
    return client
