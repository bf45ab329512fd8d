"""R3: reconciling lost members needs their stored results, so ``install`` warns when they are not kept."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from celery import Celery

from mageflow_celery import install
from mageflow_celery.worker.reaper import ReaperStep

URL = "redis://127.0.0.1:1/0"  # never contacted: install connects lazily


def installed(caplog: pytest.LogCaptureFixture, **conf: Any) -> tuple[Celery, list[str]]:
    app = Celery("warn", set_as_current=False)
    app.conf.update(conf)
    with caplog.at_level(logging.WARNING, logger="mageflow_celery"):
        install(app, redis_url=URL)
    return app, [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_install_warns_without_a_result_backend(caplog: pytest.LogCaptureFixture) -> None:
    _, warnings = installed(caplog)
    assert len(warnings) == 1 and "no result backend" in warnings[0]


def test_install_warns_when_results_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    _, warnings = installed(caplog, result_backend=URL, task_ignore_result=True)
    assert len(warnings) == 1 and "task_ignore_result" in warnings[0]


def test_install_is_quiet_with_stored_results_and_adds_the_reaper_to_workers(caplog: pytest.LogCaptureFixture) -> None:
    app, warnings = installed(caplog, result_backend=URL)
    assert warnings == []
    assert ReaperStep in app.steps["worker"]
