"""The test helpers themselves: throwaway Redis servers, ``wait_for`` and the pytest plugin."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from mageflow_celery.testing import PeakSampler, RedisServer, find_free_port, process_running, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def _accepts_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_find_free_port_returns_a_port_nothing_listens_on() -> None:
    # When a free port is found
    port = find_free_port()

    # Then it is a valid unprivileged port that can be bound
    assert 1024 <= port <= 65535
    assert not _accepts_connections(port)


@pytest.mark.redis
def test_redis_server_answers_ping_and_frees_its_port_once_stopped() -> None:
    # Given a started throwaway server
    server = RedisServer().start()
    data_dir = server.dir
    try:
        # Then it answers PING on its loopback URL, from its own directory
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url)
        try:
            assert client.ping() is True
            assert client.config_get("dir")["dir"] == str(data_dir)
        finally:
            client.close()
    finally:
        # When it is stopped
        server.stop()

    # Then the port is closed, the directory is gone and stopping again is harmless
    assert not server.running
    assert not _accepts_connections(server.port)
    assert data_dir is not None and not data_dir.exists()
    server.stop()


@pytest.mark.redis
def test_redis_server_as_a_context_manager_persists_nothing() -> None:
    # Given a server used as a context manager
    with RedisServer() as server:
        client = server.client()
        try:
            # Then RDB snapshots and the AOF are disabled
            assert client.config_get("save")["save"] == ""
            assert client.config_get("appendonly")["appendonly"] == "no"
        finally:
            client.close()

    # And it is stopped on exit
    assert not _accepts_connections(server.port)


def test_redis_server_names_the_missing_binary() -> None:
    # Given a server whose binary does not exist
    server = RedisServer(executable="no-such-redis-server")

    # When it is started, then the error names the binary
    with pytest.raises(RuntimeError, match="no-such-redis-server"):
        server.start()


@pytest.mark.redis
def test_redis_server_reports_a_server_that_exits_at_once() -> None:
    # Given a server with an option redis-server rejects
    server = RedisServer(extra_args=["--no-such-option", "1"])

    # When it is started, then the error carries the server's own output and nothing is left behind
    with pytest.raises(RuntimeError, match="exited with code"):
        server.start()
    assert not server.running
    assert server.dir is None


def test_wait_for_returns_the_first_truthy_value() -> None:
    # Given a condition that holds on the third call
    calls: list[int] = []

    def third_call() -> int | None:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else None

    # When waited for, then its value is returned
    assert wait_for(third_call, timeout_s=5, interval_s=0.001) == 3


def test_wait_for_raises_timeout_error_naming_what_it_waited_for() -> None:
    # Given a condition that never holds
    def never() -> bool:
        return False

    # When waited for, then TimeoutError names the condition
    with pytest.raises(TimeoutError, match="never"):
        wait_for(never, timeout_s=0.05, interval_s=0.01)
    with pytest.raises(TimeoutError, match="the moon"):
        wait_for(never, timeout_s=0.01, interval_s=0.01, message="the moon")


@pytest.mark.redis
def test_peak_sampler_keeps_the_highest_value_read_while_the_block_ran() -> None:
    values = iter([1, 3, 2] + [0] * 100_000)
    with PeakSampler(lambda: next(values), interval_s=0.001) as sampler:
        wait_for(lambda: sampler.samples >= 4, timeout_s=10, message="four samples")
    taken = sampler.samples
    assert sampler.peak == 3
    # And it stops reading once the block is left
    assert sampler.samples == taken


@pytest.mark.mageflow(result_expires=5, task_acks_late=True)
def test_mageflow_marker_overrides_celery_settings(mageflow_celery_config: dict[str, Any]) -> None:
    # Given a test marked with overrides, then they are merged into the defaults
    assert mageflow_celery_config["result_expires"] == 5
    assert mageflow_celery_config["task_acks_late"] is True
    assert mageflow_celery_config["broker_url"] == mageflow_celery_config["result_backend"]
    assert mageflow_celery_config["accept_content"] == ["json"]


PLUGIN_CONFTEST = """
import mageflow_celery.testing.plugin as plugin

def pytest_configure(config):
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "mageflow")
"""

NEEDS_REDIS = """
def test_needs_redis(mageflow_redis_url):
    pass
"""


@pytest.fixture
def redisless_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose runs see no ``redis-server`` on PATH and no ``MAGEFLOW_TEST_REDIS_URL``."""
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("MAGEFLOW_TEST_REDIS_URL", raising=False)
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makepyfile(NEEDS_REDIS)
    return pytester


FLUSHED = """
def test_first(mageflow_redis):
    assert mageflow_redis.dbsize() == 0
    mageflow_redis.set("leftover", "1")

def test_second(mageflow_redis):
    assert mageflow_redis.get("leftover") is None
"""


@pytest.mark.redis
def test_mageflow_redis_gives_every_test_an_empty_database(
    pytester: pytest.Pytester, mageflow_redis_url: str, mageflow_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database holding a key, and two tests in order on it: the first writes, the second reads
    mageflow_redis.set("junk-before", "1")
    monkeypatch.setenv("MAGEFLOW_TEST_REDIS_URL", mageflow_redis_url)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makepyfile(FLUSHED)

    # When they run in one session, then both pass: each started on an empty database
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_tests_needing_redis_are_skipped_locally_when_it_cannot_start(redisless_pytester: pytest.Pytester) -> None:
    # When the suite runs without redis-server outside CI
    result = redisless_pytester.runpytest_subprocess("-rs")

    # Then the test is skipped, naming the missing binary
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*redis-server*not found*"])


def test_tests_needing_redis_fail_in_ci_when_it_cannot_start(
    redisless_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # When the suite runs without redis-server in CI
    monkeypatch.setenv("CI", "true")
    result = redisless_pytester.runpytest_subprocess()

    # Then the test errors instead of being skipped
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*failing instead of skipping because CI is set*"])


def test_process_running_is_true_for_a_live_process_and_false_once_it_exited() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert process_running(os.getpid())
        assert process_running(child.pid)
    finally:
        assert child.stdin is not None
        child.stdin.close()
    # exited and not yet reaped (a zombie): not running; reaped: gone
    wait_for(lambda: not process_running(child.pid), message="the child to exit")
    child.wait(timeout=10)
    assert not process_running(child.pid)
