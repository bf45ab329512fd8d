"""Which workers report through a reporting process (``mageflow_reporting_process``): pure code, no worker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import ImproperlyConfigured

from mageflow_celery.worker import offload

#: Celery's pool modules by ``-P`` name (classes stand in for them: importing eventlet's needs eventlet).
MODULES = {"solo": "solo", "threads": "thread", "prefork": "prefork", "eventlet": "eventlet"}


def _worker(pool: str, setting: Any = None) -> Any:
    conf = {} if setting is None else {"mageflow_reporting_process": setting}
    pool_cls = type("TaskPool", (), {"__module__": f"celery.concurrency.{MODULES[pool]}"})
    return SimpleNamespace(app=SimpleNamespace(conf=conf), pool_cls=pool_cls)


@pytest.mark.parametrize(
    ("pool", "setting", "expected"),
    [
        ("solo", None, True),
        ("threads", "auto", True),
        ("prefork", "auto", False),
        ("eventlet", "auto", False),
        ("prefork", True, True),
        ("solo", False, False),
    ],
)
def test_auto_picks_the_single_process_pools_and_the_setting_overrides(pool: str, setting: Any, expected: bool) -> None:
    assert offload.wanted(_worker(pool, setting)) is expected


@pytest.mark.parametrize("setting", ["yes", "true", 2, "on"])
def test_any_other_value_is_refused(setting: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="must be 'auto', True or False"):
        offload.wanted(_worker("solo", setting))


def test_where_forking_is_unsafe_auto_keeps_the_thread_and_true_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offload.sys, "platform", "darwin")
    assert offload.wanted(_worker("solo")) is False
    with pytest.raises(ImproperlyConfigured, match="forks safely, not 'darwin'"):
        offload.wanted(_worker("solo", True))
