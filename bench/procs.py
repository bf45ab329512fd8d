"""Processes the benchmark starts and measures: CPU time from ``/proc`` and Celery worker subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from celery import Celery

_CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from the 3rd ("state") on


def cpu_seconds(pid: int, with_reaped_children: bool = True) -> float:
    """User + system CPU seconds of ``pid`` (plus its reaped children's), 0 if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _CLK_TCK


def descendants(pid: int) -> list[int]:
    """``pid`` and every live descendant process."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(x) for x in task.read_text().split()]
            except OSError:
                continue
    return out


def self_cpu_seconds() -> float:
    """CPU seconds of this process (all threads), not counting the subprocesses it started."""
    return cpu_seconds(os.getpid(), with_reaped_children=False)


class Worker:
    """A ``celery -A bench.app worker`` subprocess (its own session, so the whole tree can be stopped)."""

    def __init__(self, pool: str, concurrency: int, env: dict[str, str], log_dir: Path) -> None:
        self.pool = pool
        self.concurrency = 1 if pool == "solo" else concurrency
        self.name = f"bench-{pool}-{os.getpid()}@localhost"
        self.env = env
        self.log_path = log_dir / f"worker-{pool}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def slots(self) -> int:
        """Tasks the worker runs at once."""
        return self.concurrency

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.app",
            "worker",
            "--pool",
            self.pool,
            "--concurrency",
            str(self.concurrency),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            self.name,
        ]

    def start(self, app: Celery, timeout_s: float = 60.0) -> Worker:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while not app.control.ping(destination=[self.name], timeout=0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"worker {self.name} did not start; see {self.log_path}")
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds of the main process (consumer, and the pool itself for solo/threads) and of the
        pool's child processes (prefork)."""
        if self.process is None:
            return {}
        main = cpu_seconds(self.pid)  # includes children it reaped
        children = sum(cpu_seconds(p) for p in descendants(self.pid) if p != self.pid)
        return {"worker_main": main, "worker_children": children}

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
