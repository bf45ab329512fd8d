"""The benchmark (``python -m bench.run``) still runs end to end and writes every result it promises.

A smoke run only: tiny sizes, two repetitions. Nothing here looks at a timing or at whether a target
is met; docs/performance.md has the real numbers and how to produce them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mageflow_celery.testing.plugin import redis_unavailable

REPO = Path(__file__).resolve().parent.parent
POOLS = ("prefork", "solo", "threads", "gevent")
RATIOS = (
    "throughput.chord/group",
    "throughput.swarm30/group",
    "throughput.swarm2x/group",
    "cpu.swarm30/group",
    "cpu.swarm2x/group",
    "commands_extra.swarm30-group",
    "throughput.many_small/group",
    "cpu.many_small/group",
    "throughput.swarm_10ms_k4/naive_10ms_k4",
    "handoff.median/roundtrip",
    "handoff.p95/roundtrip",
)
SCENARIOS = (
    "group",
    "chord",
    "swarm30",
    "swarm2x",
    "many_small",
    "group_10ms",
    "swarm_10ms_k4",
    "naive_10ms_k4",
    "handoff",
    "roundtrip",
)


@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.timeout(600)
def test_quick_benchmark_run_writes_every_measurement_and_target(tmp_path: Path) -> None:
    # Given redis-server on PATH (the benchmark starts its own servers and workers)
    if shutil.which("redis-server") is None:
        redis_unavailable("redis-server is not on PATH")
    out = tmp_path / "bench.json"

    # When the quick benchmark runs
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
    )

    # Then it succeeds, prints the table and writes every section
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Targets (SPEC" in done.stdout
    results = json.loads(out.read_text())
    assert set(results["pools"]) == set(POOLS)
    for pool in POOLS:
        section = results["pools"][pool]
        assert set(RATIOS) <= set(section["ratios"])
        assert all(isinstance(section["ratios"][k], float) for k in RATIOS)
        assert set(SCENARIOS) <= set(section["summary"])
        assert section["round_trips"]["marginal_mageflow-worker_per_member"] > 0
    assert set(results["e2e"]) == {"30", "60"}
    assert set(results["scaling"]["by_n"]) == {"50", "100", "200"}
    assert {"script_us_per_member", "commands_per_member"} <= set(results["scaling"]["ratio"])
    assert {"build_serialize_create_s", "memory_ratio", "members_json_bytes"} <= set(results["bulk"])
    assert results["reaper"]["due_acted"] is True and results["reaper"]["due_poll_acted"] is True
    assert results["reaper"]["open"] == 2000 and results["reaper"]["finished"] == 2000
    assert results["stream"]["n"] == 5000 and results["stream"]["rss_peak_mib"] > 0
    assert results["stream"]["sampled_small"] == results["stream"]["sampled_big"] == 5000
    assert results["flow"]["round_trips_pooled"] > 0 and results["flow"]["round_trips_pooled_busy"] > 0
    assert len(results["flow"]["fairness"]["shared_s"]) == 1 and results["flow"]["fairness"]["samples"] > 0
    assert results["flow"]["rate"]["n"] == 10
    assert {t["id"] for t in results["targets"]} == {"P1a", "P1b", "P1c", "P1d", "P2", "P3", "P4"} | {
        "P5",
        "P6",
        "P7",
        "P8",
        "P9",
        "F3",
    }
    assert all(t["value"] is not None for t in results["targets"])
    assert "Machine speed: plain group CPU" in done.stdout
    speed = results["meta"]["speed"]
    assert speed["python_ns_per_op"] > 0 and speed["roundtrip_cpu_us"] > 0 and speed["roundtrip_wall_us"] > 0
    assert "Redis PING round trip" in done.stdout


def bench_tool(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bench.<module> ARGS`` (it starts its own Redis servers); it must succeed."""
    if shutil.which("redis-server") is None:
        redis_unavailable("redis-server is not on PATH")
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args], cwd=REPO, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.redis
@pytest.mark.timeout(300)
def test_the_per_call_benchmark_prints_every_part() -> None:
    # When `python -m bench.parts` runs a few calls of each kind
    done = bench_tool("parts", "--n", "20")

    # Then it prints a line for each part (no timing is checked)
    for part in ("receive (the start gate)", "report (one outcome)", "held producer", "plain Celery", "EVALSHA"):
        assert part in done.stdout


@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.timeout(300)
def test_the_paired_ab_benchmark_alternates_both_variants() -> None:
    # When `python -m bench.ab` compares two worker environments, one start each
    done = bench_tool("ab", "--pool", "solo", "--n", "30", "--reps", "1", "--b", "BENCH_AB_SMOKE=1")

    # Then it prints one median line per variant (no timing is checked)
    assert "A (as is): median throughput ratio" in done.stdout
    assert "B {'BENCH_AB_SMOKE': '1'}: median throughput ratio" in done.stdout
