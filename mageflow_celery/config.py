"""Configuration: :class:`SwarmConfig` (per swarm) and :class:`MageflowSettings` (per app).

Units are in the names: ``*_s`` is seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from celery.utils.time import rate as celery_rate
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .keys import DEFAULT_PREFIX

#: Default ``max_concurrency`` (tokens per swarm), as MageFlow.
DEFAULT_MAX_CONCURRENCY = 30
#: A running member's lease, seconds; renewed every ``lease_s / 3`` by its worker.
DEFAULT_LEASE_S = 60.0
#: A dispatched member not received by any worker after this many seconds is re-published.
DEFAULT_DISPATCH_TIMEOUT_S = 900.0
#: Keys of an unfinished swarm with no state change for this long expire (7 days).
DEFAULT_IDLE_TTL_S = 7 * 24 * 3600
#: At most this many failed members are kept for the failure summary.
DEFAULT_SUMMARY_MAX_FAILURES = 100
#: Names of pools: letters, digits and ``_ . : -`` (they become part of Redis keys).
_POOL_NAME_RE = r"^[A-Za-z0-9_.:\-]{1,200}$"
#: A finalizer that won the decision must publish the callbacks within this many seconds, else the
#: reaper re-publishes them (same task ids).
FINALIZE_CLAIM_S = 120.0


class SwarmConfig(BaseModel):
    """How one swarm runs. Frozen; invalid values raise :class:`pydantic.ValidationError`.

    Example:
        >>> SwarmConfig(max_concurrency=5, stop_after_n_failures=3)
        SwarmConfig(max_concurrency=5, stop_after_n_failures=3, ...)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Members holding a token (dispatched or running) at any moment.
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, ge=1)
    #: The swarm fails once this many members failed; ``None`` = never.
    stop_after_n_failures: int | None = Field(default=None, ge=1)
    #: The most members the swarm accepts in total; reaching it closes the swarm.
    max_task_allowed: int | None = Field(default=None, ge=1)
    #: Revoke (terminate) running members when the swarm fails.
    revoke_on_failure: bool = False
    lease_s: float = Field(default=DEFAULT_LEASE_S, ge=1)
    on_lost: Literal["retry", "fail"] = "retry"
    dispatch_timeout_s: float = Field(default=DEFAULT_DISPATCH_TIMEOUT_S, ge=1)
    #: ``"succeeded"``: callbacks get the succeeded members' results; ``"aligned"``: ``None`` at failed indices.
    results: Literal["succeeded", "aligned"] = "succeeded"
    summary_max_failures: int = Field(default=DEFAULT_SUMMARY_MAX_FAILURES, ge=0)
    idle_ttl_s: int = Field(default=DEFAULT_IDLE_TTL_S, ge=1)
    #: ``None`` = ``app.conf.result_expires`` (or one day when that is unset).
    result_ttl_s: int | None = Field(default=None, ge=1)
    #: A pool shared with other swarms: each member also holds one of its tokens (F1).
    pool: str | None = Field(default=None, pattern=_POOL_NAME_RE)
    #: Tokens per turn when the pool hands tokens out to the swarms waiting on it (F2).
    weight: int = Field(default=1, ge=1)
    #: Members admitted at most this often, across all workers: Celery's rate syntax ("100/m", "10/s") (F3).
    rate_limit: str | None = None

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            rate_interval_s(value)
        return value


_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def rate_interval_s(spec: str | float | None) -> float:
    """Seconds between two admissions for a rate in Celery's syntax (``"100/m"``, ``"10/s"``, ``"5/h"``, a
    number per second); ``0`` for none.

    Raises:
        ValueError: not a rate Celery understands, or not positive.

    Example:
        >>> rate_interval_s("120/m")
        0.5
    """
    if spec is None or spec == "":
        return 0.0
    try:
        per_second = float(celery_rate(str(spec)))
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"invalid rate {spec!r}: use Celery's rate syntax, e.g. '100/m', '10/s'") from exc
    if per_second <= 0:
        raise ValueError(f"a rate must be positive, not {spec!r}")
    return 1.0 / per_second


class MageflowSettings(BaseModel):
    """Per-app settings, resolved once by :func:`mageflow_celery.install`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    redis_url: str
    key_prefix: str = Field(default=DEFAULT_PREFIX, pattern=_PREFIX_RE.pattern)
    strict_task_names: bool = False

    def __repr__(self) -> str:
        return f"MageflowSettings(redis_url={redact_url(self.redis_url)!r}, key_prefix={self.key_prefix!r})"

    __str__ = __repr__


#: URL schemes of a Redis server (or of the Sentinels in front of one), as Celery and redis-py spell them.
REDIS_URL_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "unix", "sentinel"})
#: Separator between the servers of a ``sentinel://`` URL, as in Celery: ``sentinel://h1:26379;sentinel://h2:26379``.
SENTINEL_URL_SEPARATOR = ";"


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``***`` (each server of a ``sentinel://a;sentinel://b`` URL too).

    Example:
        >>> redact_url("redis://user:secret@localhost:6379/0")
        'redis://user:***@localhost:6379/0'
    """
    return SENTINEL_URL_SEPARATOR.join(_redact_one(part) for part in url.split(SENTINEL_URL_SEPARATOR))


def _redact_one(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _is_redis_url(url: Any) -> bool:
    return isinstance(url, str) and url.split("://", 1)[0] in REDIS_URL_SCHEMES


def resolve_redis_url(conf: Mapping[str, Any], explicit: str | None) -> str | None:
    """The state Redis URL: explicit, else ``mageflow_redis_url``, else a Redis result backend or broker."""
    if explicit:
        return explicit
    for key in ("mageflow_redis_url", "result_backend", "broker_url"):
        value = conf.get(key)
        if key == "mageflow_redis_url" and value:
            return str(value)
        if _is_redis_url(value):
            return str(value)
    return None


def resolve_transport_options(conf: Mapping[str, Any], url: str) -> dict[str, Any]:
    """Transport options for the state Redis at ``url`` (``master_name`` of a ``sentinel://`` URL ...).

    ``mageflow_redis_transport_options`` when set; else Celery's ``result_backend_transport_options``
    when ``url`` is the result backend, or ``broker_transport_options`` when it is the broker.

    Example:
        >>> conf = {"result_backend": "sentinel://s1:26379", "result_backend_transport_options": {"master_name": "m"}}
        >>> resolve_transport_options(conf, "sentinel://s1:26379")
        {'master_name': 'm'}
    """
    explicit = conf.get("mageflow_redis_transport_options")
    if explicit:
        return dict(explicit)
    for url_key, options_key in (
        ("result_backend", "result_backend_transport_options"),
        ("broker_url", "broker_transport_options"),
    ):
        if conf.get(url_key) == url:
            return dict(conf.get(options_key) or {})
    return {}


def result_ttl_default(conf: Mapping[str, Any]) -> int:
    """Seconds a finished swarm is kept when ``SwarmConfig.result_ttl_s`` is None: ``result_expires``.

    As in Celery, ``result_expires`` of ``0`` or ``None`` means never expire: ``0`` is returned, and the
    scripts then remove the TTL of a finished swarm's keys. Unset, Celery's default is one day.
    """
    if "result_expires" not in conf:
        return 24 * 3600
    expires = conf.get("result_expires")
    if not expires:
        return 0
    seconds = expires.total_seconds() if hasattr(expires, "total_seconds") else float(expires)
    return max(1, int(seconds))
