"""Fixtures of the deployment matrix (cells and deployments in ``matrixkit``, the worker app in ``matrix_app``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# the scenario's assertions live in helper modules: have pytest explain them as in a test module
pytest.register_assert_rewrite("matrix_scenario", "matrixkit")

from matrixkit import Cell, Deployment  # noqa: E402


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Callable[[Cell], Deployment]]:
    """``deploy(cell)`` starts the cell's servers, client app and workers; all are stopped at teardown."""
    made: list[Deployment] = []

    def make(cell: Cell) -> Deployment:
        made.append(Deployment(cell, tmp_path))
        return made[-1]

    try:
        yield make
    finally:
        for deployment in made:
            deployment.close()
