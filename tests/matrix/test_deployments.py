"""SPEC §9 D1-D4: the standard swarm scenario (``matrix_scenario``) in every deployment cell.

Each cell runs real ``celery worker`` subprocesses configured for it, and a client (this process)
configured the same way. Dimensions vary one at a time from the base cell (json, threads pool, Redis
broker, Redis result backend, standalone state Redis): a failure names the one dimension that broke,
and 16 cells cover every value, where the full product (4 x 5 x 2 x 4 x 5 = 800 cells) would not fit
in CI's time. The cells are independent (their own Redis servers, queue and worker names) and run in
parallel: ``./dev matrix`` (``pytest -m matrix -n 2 tests/matrix``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from matrix_scenario import run_standard_scenario
from matrixkit import Cell, Deployment

pytestmark = pytest.mark.matrix

BASE = Cell()
VARIANTS = {
    "serializer": ("pickle", "msgpack", "yaml"),  # D1
    "pool": ("prefork", "solo", "gevent", "eventlet"),  # D2
    "broker": ("rabbitmq",),  # D3
    "backend": ("postgresql", "sqlite", "none"),  # D3
    "state": ("cluster", "sentinel", "tls", "acl"),  # D4
}
CELLS = [BASE] + [replace(BASE, **{dimension: value}) for dimension, values in VARIANTS.items() for value in values]


@pytest.mark.parametrize("cell", CELLS, ids=[cell.name for cell in CELLS])
def test_the_standard_swarm_scenario_holds_in_every_deployment(
    cell: Cell, deploy: Callable[[Cell], Deployment]
) -> None:
    # Given the cell's servers, a client app and workers configured for it
    deployment = deploy(cell)
    # When the standard scenario runs, Then every one of its outcomes is exact
    run_standard_scenario(deployment)
