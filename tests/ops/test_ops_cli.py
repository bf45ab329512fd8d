"""The ``celery swarm`` command, driven through click's test runner against real swarms."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery import Celery
from celery.bin.base import CLIContext
from click.testing import CliRunner, Result
from opskit import Ops

from mageflow_celery import SwarmConfig, SwarmProgress, SwarmResult, install, swarm
from mageflow_celery.keys import member_task_id
from mageflow_celery.ops import cli as cli_module
from mageflow_celery.ops.cli import EXIT_INTERRUPTED, EXIT_NOT_FOUND, EXIT_UNAVAILABLE
from mageflow_celery.ops.cli import swarm as swarm_cli
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis]


def run(app: Celery, args: Sequence[str], input: str | None = None) -> Result:
    """Invoke ``celery swarm <args>`` as Celery would: ``ctx.obj`` is its CLIContext carrying the app."""
    obj = CLIContext(app=app, no_color=True, workdir=None, quiet=False)
    return CliRunner().invoke(swarm_cli, list(args), obj=obj, input=input)


def _started_swarm(ops: Ops, n: int = 3, limit: int = 2, **kw: object) -> SwarmResult:
    s = swarm(tasks=[ops.gated.s(i) for i in range(n)], config=SwarmConfig(max_concurrency=limit), app=ops.app, **kw)
    return s.apply_async()


# -- ls ---------------------------------------------------------------------------------------------


def test_ls_without_swarms_says_so_and_succeeds(mageflow_app: Celery) -> None:
    result = run(mageflow_app, ["ls"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr.strip() == "No active swarms."


@pytest.mark.worker
def test_ls_prints_one_row_per_active_swarm_matching_its_real_progress(
    ops: Ops, mageflow_worker: WorkerFactory
) -> None:
    # Given a running swarm (2 of 3 members running) and a newer paused one that never started a member
    mageflow_worker(concurrency=4)
    busy = _started_swarm(ops, n=3, limit=2, task_name="busy")
    ops.wait_started(0, 1)
    idle = swarm(tasks=[ops.gated.s(9)], task_name="idle", app=ops.app)
    idle.pause()
    idle_res = idle.apply_async()

    # When listed
    result = run(ops.app, ["ls"])

    # Then the table has the documented columns and one row per swarm, newest first
    assert result.exit_code == 0, result.output
    header, *rows = [line.split() for line in result.stdout.splitlines()]
    assert header == ["ID", "NAME", "STATE", "DONE/TOTAL", "FAILED", "RUNNING/LIMIT", "AGE"]
    assert [row[:6] for row in rows] == [
        [idle_res.id, "idle", "paused", "0/1", "0", "0/30"],
        [busy.id, "busy", "running", "0/3", "0", "2/2"],
    ]
    assert all(re.fullmatch(r"\d+s", row[6]) for row in rows)

    # When a member finishes, the row follows
    ops.open(0)
    wait_for(lambda: busy.progress().succeeded == 1, message="member 0 reported")
    row = next(line.split() for line in run(ops.app, ["ls"]).stdout.splitlines() if line.startswith(busy.id))
    assert row[2:6] == ["running", "1/3", "0", "2/2"]


def test_ls_hides_finished_swarms_unless_asked_and_prints_json(mageflow_app: Celery) -> None:
    # Given a finished swarm (empty and closed) and a running one
    done = swarm(is_swarm_closed=True, task_name="done", app=mageflow_app).apply_async()
    running = swarm(tasks=["ops.anything"], task_name="running", app=mageflow_app).apply_async()

    # Then ls lists the running one only, ls --all both
    assert [line.split()[0] for line in run(mageflow_app, ["ls"]).stdout.splitlines()[1:]] == [running.id]
    assert [line.split()[0] for line in run(mageflow_app, ["ls", "--all"]).stdout.splitlines()[1:]] == [
        running.id,
        done.id,
    ]

    # And --json prints the progress dicts (plus "done") to stdout, nothing else
    result = run(mageflow_app, ["ls", "--all", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [(d["swarm_id"], d["name"], d["state"], d["closed"], d["total"], d["done"]) for d in data] == [
        (running.id, "running", "running", False, 1, 0),
        (done.id, "done", "succeeded", True, 0, 0),
    ]
    assert set(data[0]) == set(SwarmProgress.model_fields) | {"done"}
    assert [d["swarm_id"] for d in json.loads(run(mageflow_app, ["ls", "--json"]).stdout)] == [running.id]

    # And once nothing is active, the hint says how to see the finished ones
    running.cancel()
    result = run(mageflow_app, ["ls"])
    assert result.stdout == ""
    assert result.stderr.strip() == "No active swarms. (2 finished; use --all to list them.)"


# -- show -------------------------------------------------------------------------------------------


@pytest.mark.worker
def test_show_prints_details_and_failed_members_with_their_error(ops: Ops, mageflow_worker: WorkerFactory) -> None:
    # Given a swarm with one succeeded and one failed member, and one still running
    mageflow_worker(concurrency=4)
    s = swarm(
        tasks=[ops.gated.s(0), ops.gated.s(1, fail=True), ops.gated.s(2)],
        config=SwarmConfig(max_concurrency=3, stop_after_n_failures=5),
        task_name="report",
        is_swarm_closed=True,
        app=ops.app,
    )
    res = s.apply_async()
    ops.open(0, 1)
    wait_for(lambda: res.progress().done == 2, message="members 0 and 1 reported")

    # When shown
    result = run(ops.app, ["show", res.id])

    # Then it prints the swarm's state, counts and the failed member with its error
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"swarm:     {res.id}"
    assert lines[1] == "name:      report"
    assert lines[2] == "state:     running (closed)"
    assert lines[3].endswith("] 2/3 done (66%)")
    assert lines[4] == (
        "members:   succeeded 1, failed 1, cancelled 0, running 1, dispatched 0, queued 0, registered 0"
    )
    assert lines[5] == "limit:     3 at once (1 holding a token)"
    assert lines[6] == "threshold: stops after 5 failure(s)"
    assert lines[-2] == "failed members (1 of 1):"
    assert lines[-1] == f"  #1  {member_task_id(res.id, 1)}  ValueError: member 1 failed on purpose"

    # And --json prints describe_swarm's dict, on stdout only
    result = run(ops.app, ["show", res.id, "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["swarm_id"], data["name"], data["state"], data["closed"], data["total"]) == (
        res.id,
        "report",
        "running",
        True,
        3,
    )
    assert (data["succeeded"], data["failed"], data["dispatched"] + data["running"], data["stop_after_n_failures"]) == (
        1,
        1,
        1,
        5,
    )
    assert set(SwarmProgress.model_fields) <= set(data)
    assert data["failed_members"] == [
        {
            "task_id": member_task_id(res.id, 1),
            "index": 1,
            "exc_type": "ValueError",
            "message": "member 1 failed on purpose",
        }
    ]
    ops.open_all()
    assert res.get(timeout=20) == [0, 20]


def test_show_hints_name_the_app_and_a_member_failing_after_a_cancel_is_listed_not_said_to_be_cut(
    ops: Ops, mageflow_worker: WorkerFactory
) -> None:
    # Given a paused swarm, and a cancelled one whose running member fails after the cancel
    mageflow_worker(concurrency=2)
    paused = _started_swarm(ops, n=1, limit=1)
    paused.pause()
    cancelled = swarm(tasks=[ops.gated.s(7, fail=True)], is_swarm_closed=True, app=ops.app).apply_async()
    ops.wait_started(7)
    cancelled.cancel()
    ops.open(7)
    wait_for(lambda: cancelled.progress().running == 0, message="member 7 to end")

    # When shown, then the hint is a command that works as printed (with -A <app>)
    lines = run(ops.app, ["show", paused.id]).stdout.splitlines()
    hint = f"(celery -A {ops.app.main} swarm resume {paused.id})"
    assert f"note:      paused: no member starts until it is resumed {hint}" in lines
    # And the member that failed is listed with its error, and nothing is said to be cut
    lines = run(ops.app, ["show", cancelled.id]).stdout.splitlines()
    assert lines[-2] == "failed members (1 of 1):"
    assert lines[-1] == f"  #0  {member_task_id(cancelled.id, 0)}  ValueError: member 7 failed on purpose"
    ops.open_all()


@pytest.mark.parametrize(
    "args",
    [
        ["show", "nope"],
        ["show", "nope", "--json"],
        ["watch", "nope"],
        ["pause", "nope"],
        ["resume", "nope"],
        ["cancel", "nope", "--yes"],
        ["cancel", "nope"],
        ["close", "nope"],
    ],
)
def test_an_unknown_swarm_id_fails_with_a_clear_message(mageflow_app: Celery, args: list[str]) -> None:
    result = run(mageflow_app, args)
    assert result.exit_code == EXIT_NOT_FOUND
    assert result.stdout == ""
    assert result.stderr.strip() == "Error: no swarm with id 'nope' (never created, or expired)"


@pytest.mark.parametrize("args", [["ls"], ["show", "x"], ["pause", "x"], ["cancel", "x", "--yes"], ["reap"]])
def test_an_unreachable_state_redis_fails_with_a_clear_message(args: list[str]) -> None:
    app = Celery("unreachable", set_as_current=False)
    install(app, redis_url="redis://127.0.0.1:1/0")
    result = run(app, args)
    assert result.exit_code == EXIT_UNAVAILABLE
    assert result.stderr.startswith("Error: the swarm state Redis is unavailable: ")
    assert "127.0.0.1:1" in result.stderr


def test_cancel_with_an_unreachable_broker_says_the_swarm_is_cancelled_but_not_revoked(
    mageflow_app: Celery, mageflow_redis_url: str
) -> None:
    # Given a swarm with a dispatched member, and a CLI app whose broker is down (state Redis is fine)
    res = swarm(tasks=["ops.anything"] * 2, config={"max_concurrency": 1}, app=mageflow_app).apply_async()
    app = Celery("broker-down", broker="redis://127.0.0.1:1/0", set_as_current=False)
    app.conf.broker_transport_options = {"max_retries": 0}
    install(app, redis_url=mageflow_redis_url)

    # When it is cancelled from that CLI
    result = run(app, ["cancel", res.id, "--yes"])

    # Then the state change is done, and the failed revoke is reported with exit code 69
    assert result.exit_code == EXIT_UNAVAILABLE
    assert result.stderr.startswith(
        f"Error: swarm {res.id} is cancelled, but revoking its 1 started member(s) failed because the broker is "
        "unavailable ("
    )
    assert res.progress().state == "cancelled"


# -- lifecycle --------------------------------------------------------------------------------------


@pytest.mark.worker
def test_pause_and_resume_steer_the_swarm_and_are_idempotent(ops: Ops, mageflow_worker: WorkerFactory) -> None:
    # Given a swarm (limit 1) with one running member
    mageflow_worker(concurrency=2)
    res = _started_swarm(ops, n=3, limit=1, is_swarm_closed=True)
    ops.wait_started(0)

    # When paused from the command line (twice)
    result = run(ops.app, ["pause", res.id])
    assert (result.exit_code, result.stdout) == (
        0,
        f"Paused swarm {res.id}: no member starts until it is resumed; running members finish.\n",
    )
    assert res.progress().state == "paused"
    again = run(ops.app, ["pause", res.id])
    assert (again.exit_code, again.stdout) == (0, f"Swarm {res.id} is already paused; nothing to do.\n")

    # Then the finished member's token is not handed on
    ops.open(0)
    wait_for(lambda: res.progress().succeeded == 1, message="member 0 reported")
    assert res.progress().running + res.progress().dispatched == 0

    # When resumed, the next member is admitted at once
    result = run(ops.app, ["resume", res.id])
    assert (result.exit_code, result.stdout) == (0, f"Resumed swarm {res.id}: 1/1 running.\n")
    again = run(ops.app, ["resume", res.id])
    assert again.stdout == f"Swarm {res.id} is already running (not paused); nothing to do.\n"
    ops.open_all()
    assert res.get(timeout=20) == [0, 10, 20]
    finished = run(ops.app, ["pause", res.id])
    assert (finished.exit_code, finished.stdout) == (0, f"Swarm {res.id} is already succeeded; nothing to do.\n")


@pytest.mark.worker
def test_cancel_asks_for_confirmation_unless_yes(ops: Ops, mageflow_worker: WorkerFactory) -> None:
    # Given a swarm (limit 1) with one running member and two queued
    mageflow_worker(concurrency=2)
    res = _started_swarm(ops, n=3, limit=1, task_name="bad-batch")
    ops.wait_started(0)

    # When the confirmation is declined, nothing changes
    declined = run(ops.app, ["cancel", res.id], input="n\n")
    assert declined.exit_code == 1
    assert f"Cancel swarm {res.id} (bad-batch)? 2 member(s) that did not start will never run" in declined.stderr
    assert "Aborted!" in declined.stderr
    assert res.progress().state == "running"

    # When it is confirmed, the swarm is cancelled
    accepted = run(ops.app, ["cancel", res.id], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout == f"Cancelled swarm {res.id}: 2 member(s) will never run, 1 revoked.\n"
    p = res.progress()
    assert (p.state, p.cancelled, p.queued) == ("cancelled", 2, 0)

    # And cancelling again (with --yes, no prompt) changes nothing
    again = run(ops.app, ["cancel", res.id, "--yes", "--terminate"])
    assert (again.exit_code, again.stdout, again.stderr) == (
        0,
        f"Swarm {res.id} is already cancelled; nothing to do.\n",
        "",
    )
    ops.open_all()
    wait_for(lambda: res.progress().running == 0, message="member 0 to finish")
    assert ops.started() == [0]


def test_cancel_with_yes_does_not_prompt(mageflow_app: Celery) -> None:
    res = swarm(tasks=["ops.anything"] * 2, config={"max_concurrency": 1}, app=mageflow_app).apply_async()
    result = run(mageflow_app, ["cancel", res.id, "-y"])
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"Cancelled swarm {res.id}: 1 member(s) will never run, 1 revoked.\n"
    assert res.progress().state == "cancelled"


def test_close_asks_for_confirmation_and_a_closed_swarm_finishes(mageflow_app: Celery) -> None:
    # Given an open, started swarm without members
    res = swarm(task_name="growing", app=mageflow_app).apply_async()

    # When closing is declined, it stays open
    declined = run(mageflow_app, ["close", res.id], input="n\n")
    assert declined.exit_code == 1 and "Aborted!" in declined.stderr
    assert res.progress().closed is False

    # When it is confirmed, it closes and (having no member) succeeds at once
    accepted = run(mageflow_app, ["close", res.id], input="y\n")
    assert accepted.exit_code == 0
    assert accepted.stdout == f"Closed swarm {res.id}: 0 member(s) left to finish; state succeeded.\n"
    assert res.get(timeout=5) == []
    again = run(mageflow_app, ["close", res.id, "--yes"])
    assert again.stdout == f"Swarm {res.id} is already succeeded; nothing to do.\n"


def test_close_with_yes_does_not_prompt_and_reports_what_is_left(mageflow_app: Celery) -> None:
    res = swarm(tasks=["ops.anything"] * 3, config={"max_concurrency": 1}, app=mageflow_app).apply_async()
    result = run(mageflow_app, ["close", res.id, "--yes"])
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"Closed swarm {res.id}: 3 member(s) left to finish; state running.\n"
    assert res.progress().closed is True
    again = run(mageflow_app, ["close", res.id, "--yes"])
    assert again.stdout == f"Swarm {res.id} is already closed; nothing to do.\n"


# -- watch ------------------------------------------------------------------------------------------


@pytest.mark.worker
def test_watch_renders_progress_until_the_swarm_succeeds_and_exits_0(ops: Ops, mageflow_worker: WorkerFactory) -> None:
    # Given a swarm whose members wait on their gates
    mageflow_worker(concurrency=4)
    res = _started_swarm(ops, n=3, limit=2, is_swarm_closed=True)
    ops.wait_started(0, 1)

    # When watched, and the members are released while it watches
    runner = CliRunner()
    codes: list[int] = []
    obj = CLIContext(app=ops.app, no_color=True, workdir=None, quiet=False)
    with runner.isolation() as (out, err, _):
        watcher = threading.Thread(
            target=lambda: codes.append(
                swarm_cli.main(["watch", res.id, "--interval", "0.05"], obj=obj, standalone_mode=False)
            )
        )
        watcher.start()
        wait_for(lambda: b"0/3" in out.getvalue(), message="the first progress line")
        ops.open_all()
        watcher.join(30)
        text, messages = out.getvalue().decode(), err.getvalue().decode()

    # Then it drew the running state first, the final state last, and exited 0
    assert codes == [0]
    lines = text.splitlines()
    assert re.fullmatch(r"running   \[-{30}\] 0/3  ok 0  failed 0  cancelled 0  running 2/2  queued 1", lines[0])
    assert lines[-2] == "succeeded [" + "#" * 30 + "] 3/3  ok 3  failed 0  cancelled 0  running 0/2  queued 0"
    assert lines[-1] == f"Swarm {res.id} succeeded: 3 succeeded, 0 failed."
    assert f"Watching swarm {res.id}" in messages


@pytest.mark.worker
def test_watch_exits_1_when_the_swarm_fails(ops: Ops, mageflow_worker: WorkerFactory) -> None:
    mageflow_worker(concurrency=2)
    ops.open_all()
    res = swarm(
        tasks=[ops.gated.s(0, fail=True), ops.gated.s(1)],
        config=SwarmConfig(max_concurrency=1, stop_after_n_failures=1),
        is_swarm_closed=True,
        app=ops.app,
    ).apply_async()
    result = run(ops.app, ["watch", res.id, "--interval", "0.05"])
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[-1] == f"Swarm {res.id} failed: 1 member(s) failed, 1 cancelled."


def test_watch_exits_1_when_the_swarm_was_cancelled(mageflow_app: Celery) -> None:
    res = swarm(tasks=["ops.anything"] * 4, config={"max_concurrency": 1}, app=mageflow_app).apply_async()
    res.cancel()
    result = run(mageflow_app, ["watch", res.id])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "cancelled [" + "#" * 22 + "-" * 8 + "] 3/4  ok 0  failed 0  cancelled 3  running 1/1  queued 0",
        f"Swarm {res.id} was cancelled: 3 member(s) cancelled.",
    ]


def test_watch_interrupted_with_ctrl_c_leaves_the_swarm_running(
    mageflow_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a running swarm that nobody works on, watched until the user presses Ctrl-C
    res = swarm(tasks=["ops.anything"], app=mageflow_app).apply_async()

    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module.reading, "time", SimpleNamespace(sleep=interrupt, time=time.time))
    result = run(mageflow_app, ["watch", res.id])

    # Then watch exits 130 after one progress line, and the swarm is untouched
    assert result.exit_code == EXIT_INTERRUPTED
    assert result.stdout.startswith("running ")
    assert result.stderr.splitlines()[-1] == f"Stopped watching; swarm {res.id} goes on."
    assert res.progress().state == "running"


# -- reap and help ----------------------------------------------------------------------------------


def test_reap_runs_one_reaper_pass_and_prints_what_it_did(mageflow_app: Celery) -> None:
    swarm(tasks=["ops.anything"], app=mageflow_app).apply_async()
    result = run(mageflow_app, ["reap", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["swarms"] == 1 and report["errors"] == 0
    text = run(mageflow_app, ["reap"])
    assert text.exit_code == 0 and text.stdout.startswith("Reaper pass done: swarms 1, ")


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(swarm_cli, ["--help"])
    assert result.exit_code == 0
    listed = re.findall(r"^  (\w+) ", result.stdout, re.MULTILINE)
    assert listed == [
        "cancel",
        "close",
        "dashboard",
        "ls",
        "members",
        "pause",
        "pool",
        "reap",
        "resize",
        "resume",
        "show",
        "watch",
    ]
    cancel_help = CliRunner().invoke(swarm_cli, ["cancel", "--help"]).stdout
    assert "--terminate" in cancel_help and "--yes" in cancel_help


# -- the real ``celery`` command --------------------------------------------------------------------

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent.parent
#: Runs Celery's own ``celery`` command with the group added by hand (works without installing the package).
_CELERY_WITH_GROUP = (
    "import sys; from celery.bin.celery import celery; from mageflow_celery.ops.cli import swarm; "
    "celery.add_command(swarm); sys.exit(celery(auto_envvar_prefix='CELERY'))"
)


def _celery(prefix: list[str], args: list[str], redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OPS_CLI_REDIS_URL": redis_url,
        "PYTHONPATH": os.pathsep.join([str(_HERE), str(_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [*prefix, "-A", "ops_cli_app", "swarm", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _check_real_command(prefix: list[str], app: Celery, redis_url: str) -> None:
    res = swarm(tasks=["ops_cli.noop"], task_name="from-cli", app=app).apply_async()
    listed = _celery(prefix, ["ls", "--json"], redis_url)
    assert listed.returncode == 0, listed.stderr
    assert [(d["swarm_id"], d["name"], d["state"]) for d in json.loads(listed.stdout)] == [
        (res.id, "from-cli", "running")
    ]
    missing = _celery(prefix, ["show", "nope"], redis_url)
    assert missing.returncode == EXIT_NOT_FOUND
    assert "Error: no swarm with id 'nope'" in missing.stderr
    paused = _celery(prefix, ["pause", res.id], redis_url)
    assert paused.returncode == 0, paused.stderr
    assert res.progress().paused is True


def test_the_group_runs_under_celerys_own_command(mageflow_app: Celery, mageflow_redis_url: str) -> None:
    # celery -A ops_cli_app swarm ...: Celery builds the CLIContext (ctx.obj.app) our commands use
    _check_real_command([sys.executable, "-c", _CELERY_WITH_GROUP], mageflow_app, mageflow_redis_url)


def test_celery_swarm_is_registered_through_the_entry_point(mageflow_app: Celery, mageflow_redis_url: str) -> None:
    registered = {ep.name: ep.value for ep in entry_points(group="celery.commands")}
    assert "swarm" in registered, "mageflow_celery is not installed (pip install -e .; ./dev does it)"
    assert registered["swarm"] == "mageflow_celery.ops.cli:swarm"
    _check_real_command([sys.executable, "-m", "celery"], mageflow_app, mageflow_redis_url)
