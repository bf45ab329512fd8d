"""Reading state Redis URLs (no server): every spelling Celery's Redis backend accepts, and clear errors."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from mageflow_celery.config import redact_url, resolve_redis_url, resolve_transport_options
from mageflow_celery.errors import MageflowError, StateStoreError
from mageflow_celery.state.connect import connect, parse_url
from mageflow_celery.testing import find_free_port


@pytest.fixture
def unused_port() -> int:
    return find_free_port()


def test_plain_url_gives_host_port_and_db() -> None:
    target = parse_url("redis://cache.internal:6380/3")

    assert target.kwargs == {"host": "cache.internal", "port": 6380, "db": 3}
    assert target.sentinels == ()


def test_missing_parts_default_to_localhost_6379_db_0() -> None:
    assert parse_url("redis://").kwargs == {"host": "localhost", "port": 6379, "db": 0}


def test_acl_user_and_percent_encoded_password_are_decoded() -> None:
    target = parse_url("redis://worker:p%40ss%2Fw@h:6379/1")

    assert target.kwargs["username"] == "worker"
    assert target.kwargs["password"] == "p@ss/w"
    assert "p%40ss" not in target.where and "***" in target.where


def test_password_without_user_sets_no_username() -> None:
    kwargs = parse_url("redis://:secret@h/0").kwargs

    assert kwargs["password"] == "secret"
    assert "username" not in kwargs


@pytest.mark.parametrize(
    ("url", "db"),
    [
        ("unix:///run/redis/redis.sock", 0),
        ("unix:///run/redis/redis.sock?db=4", 4),
        ("redis+socket:///run/redis/redis.sock?virtual_host=5", 5),
    ],
)
def test_socket_urls_give_the_socket_path_and_db(url: str, db: int) -> None:
    kwargs = parse_url(url).kwargs

    assert kwargs["unix_socket_path"] == "/run/redis/redis.sock"
    assert kwargs["db"] == db
    assert "host" not in kwargs


def test_db_query_parameter_wins_over_the_path() -> None:
    assert parse_url("redis://h/1?db=7").kwargs["db"] == 7


@pytest.mark.parametrize(
    ("spelling", "mode"),
    [
        ("CERT_REQUIRED", ssl.CERT_REQUIRED),
        ("CERT_OPTIONAL", ssl.CERT_OPTIONAL),
        ("CERT_NONE", ssl.CERT_NONE),
        ("required", ssl.CERT_REQUIRED),
        ("optional", ssl.CERT_OPTIONAL),
        ("none", ssl.CERT_NONE),
    ],
)
def test_rediss_accepts_every_ssl_cert_reqs_spelling_celery_accepts(spelling: str, mode: ssl.VerifyMode) -> None:
    kwargs = parse_url(f"rediss://h:6380/0?ssl_cert_reqs={spelling}").kwargs

    assert kwargs["ssl"] is True
    assert kwargs["ssl_cert_reqs"] is mode


def test_rediss_reads_the_certificate_files_percent_decoded() -> None:
    url = "rediss://h/0?ssl_cert_reqs=required&ssl_ca_certs=%2Fetc%2Fca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"

    kwargs = parse_url(url).kwargs

    assert (kwargs["ssl_ca_certs"], kwargs["ssl_certfile"], kwargs["ssl_keyfile"]) == (
        "/etc/ca.pem",
        "/c.pem",
        "/k.pem",
    )


def test_rediss_without_ssl_cert_reqs_verifies_the_server() -> None:
    assert parse_url("rediss://h/0").kwargs["ssl_cert_reqs"] is ssl.CERT_REQUIRED


def test_an_unknown_ssl_cert_reqs_is_an_error_naming_the_accepted_spellings() -> None:
    with pytest.raises(MageflowError, match="invalid ssl_cert_reqs 'CERT_MAYBE'.*CERT_REQUIRED.*none"):
        parse_url("rediss://h/0?ssl_cert_reqs=CERT_MAYBE")


def test_tls_parameters_on_a_plain_url_are_an_error() -> None:
    with pytest.raises(MageflowError, match="ssl_cert_reqs need a rediss:// URL"):
        parse_url("redis://h/0?ssl_cert_reqs=required")


def test_redis_py_query_parameters_are_converted() -> None:
    kwargs = parse_url("redis://h/0?socket_timeout=2.5&health_check_interval=10").kwargs

    assert kwargs["socket_timeout"] == 2.5
    assert kwargs["health_check_interval"] == 10


def test_other_query_parameters_pass_on_as_strings_as_redis_py_does() -> None:
    # client_name is not one of redis-py's typed parameters, yet its from_url accepts it
    assert parse_url("redis://h/0?client_name=mageflow-state").kwargs["client_name"] == "mageflow-state"


def test_a_query_parameter_redis_py_refuses_is_an_error_without_the_password() -> None:
    with pytest.raises(MageflowError, match="colour") as info:
        connect("redis://u:hunter2@127.0.0.1:1/0?colour=blue")

    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h/0", "not a Redis URL"),
        ("localhost:6379", "not a Redis URL"),
        ("redis://h:notaport/0", "invalid port"),
        ("redis://h/zero", "must be a number"),
        ("redis://h/0?socket_timeout=soon", "invalid value 'soon' for 'socket_timeout'"),
        ("unix://", "names no socket path"),
        ("redis://h/0?master_name=m", "master_name is for sentinel:// URLs only"),
    ],
)
def test_bad_urls_are_mageflow_errors(url: str, message: str) -> None:
    with pytest.raises(MageflowError, match=message):
        parse_url(url)


def test_sentinel_url_lists_every_sentinel_and_takes_the_master_from_the_options() -> None:
    url = "sentinel://:masterpw@s1:26379/2;sentinel://s2:26380/2;sentinel://s3"

    target = parse_url(url, {"master_name": "mymaster", "sentinel_kwargs": {"password": "sentpw"}})

    assert target.sentinels == (("s1", 26379), ("s2", 26380), ("s3", 26379))
    assert target.master_name == "mymaster"
    # the URL's password and db are the master's (as in Celery); the Sentinels' own come from sentinel_kwargs
    assert target.kwargs == {"password": "masterpw", "db": 2}
    assert target.sentinel_kwargs == {"password": "sentpw"}
    assert "masterpw" not in target.where


def test_sentinel_master_name_may_be_a_query_parameter() -> None:
    assert parse_url("sentinel://s1:26379?master_name=m1").master_name == "m1"


def test_sentinel_options_password_overrides_the_url_and_unknown_options_are_ignored() -> None:
    options = {"master_name": "m", "password": "frompw", "visibility_timeout": 3600, "min_other_sentinels": 1}

    target = parse_url("sentinel://:urlpw@s1", options)

    assert target.kwargs["password"] == "frompw"
    assert target.min_other_sentinels == 1
    assert target.sentinel_kwargs is None  # redis-py then reuses the socket_* settings for the Sentinels


def test_sentinel_without_a_master_name_says_where_to_put_it() -> None:
    with pytest.raises(MageflowError, match="names no master: set master_name in the transport options"):
        parse_url("sentinel://s1:26379", {})


def test_sentinel_master_name_in_url_and_options_must_agree() -> None:
    with pytest.raises(MageflowError, match="says master_name='a' but the transport options say 'b'"):
        parse_url("sentinel://s1?master_name=a", {"master_name": "b"})


def test_sentinel_url_mixing_schemes_is_an_error() -> None:
    with pytest.raises(MageflowError, match="must be a sentinel:// URL"):
        parse_url("sentinel://s1;redis://s2", {"master_name": "m"})


def test_connect_rejects_a_missing_ca_file_before_connecting() -> None:
    with pytest.raises(MageflowError, match="ssl_ca_certs names a file that does not exist: '/nonexistent/ca.pem'"):
        connect("rediss://127.0.0.1:1/0?ssl_cert_reqs=required&ssl_ca_certs=/nonexistent/ca.pem")


def test_connect_to_nothing_is_a_state_store_error_without_the_password(unused_port: int) -> None:
    with pytest.raises(
        StateStoreError, match=f"cannot reach the state Redis at redis://u:\\*\\*\\*@127.0.0.1:{unused_port}"
    ):
        connect(f"redis://u:hunter2@127.0.0.1:{unused_port}/0?socket_connect_timeout=1")


def test_redact_url_hides_every_password_of_a_sentinel_url() -> None:
    url = "sentinel://:pw1@s1:26379;sentinel://u:pw2@s2:26379"

    assert redact_url(url) == "sentinel://:***@s1:26379;sentinel://u:***@s2:26379"


@pytest.mark.parametrize("url", ["sentinel://s1:26379", "rediss://h:6380/0?ssl_cert_reqs=required"])
def test_sentinel_and_rediss_backends_are_state_redis_urls(url: str) -> None:
    conf: dict[str, Any] = {"result_backend": url, "broker_url": "amqp://guest@rabbit//"}

    assert resolve_redis_url(conf, None) == url


def test_transport_options_follow_the_url_they_belong_to() -> None:
    conf: dict[str, Any] = {
        "broker_url": "sentinel://b:26379",
        "broker_transport_options": {"master_name": "broker-master"},
        "result_backend": "sentinel://r:26379",
        "result_backend_transport_options": {"master_name": "backend-master"},
    }

    assert resolve_transport_options(conf, "sentinel://r:26379") == {"master_name": "backend-master"}
    assert resolve_transport_options(conf, "sentinel://b:26379") == {"master_name": "broker-master"}
    assert resolve_transport_options(conf, "redis://elsewhere") == {}
    explicit = {**conf, "mageflow_redis_transport_options": {"master_name": "mine"}}
    assert resolve_transport_options(explicit, "sentinel://r:26379") == {"master_name": "mine"}
