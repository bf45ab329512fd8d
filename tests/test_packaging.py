"""The built wheel alone makes a working install: a fresh venv with nothing but ``pip install <wheel>``
runs a swarm end to end with a real ``celery worker``.

This is what a user gets from ``pip install mageflow-celery``: no dev tools, no checkout on the path.
It catches missing runtime dependencies (kombu's Redis transport needs ``packaging``, which
``celery[redis]`` brings) and files left out of the wheel (``LICENSE``, ``py.typed``, the Lua scripts).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mageflow_celery.testing import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.worker, pytest.mark.timeout(600)]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Seconds the client waits for the swarm; the worker starts within a few seconds.
SWARM_TIMEOUT_S = 60

APP_MODULE = """\
import os

from celery import Celery

from mageflow_celery import install

URL = os.environ["PACKAGING_TEST_REDIS_URL"]
app = Celery("packaged_app", broker=URL, backend=URL)
app.conf.broker_connection_retry_on_startup = True
install(app)


@app.task
def double(x):
    return 2 * x


@app.task
def total(results):
    return sum(results)
"""

CLIENT_SCRIPT = """\
import mageflow_celery
from celery.result import AsyncResult

from mageflow_celery import SwarmConfig, swarm
from packaged_app import app, double, total

s = swarm(
    tasks=[double.s(i) for i in (1, 2, 3)],
    success_callbacks=[total.s()],
    config=SwarmConfig(max_concurrency=2),
    is_swarm_closed=True,
)
result = s.apply_async()
print("package", mageflow_celery.__file__)
print("results", result.get(timeout={timeout}))
print("callback", AsyncResult(result.id + "~s0", app=app).get(timeout={timeout}))
"""


def _run(command: list[Any], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=300, check=False, **kwargs
    )
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without this venv or checkout on the path, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, REPO_ROOT])
    (built,) = out.glob("mageflow_celery-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """The python of a new venv where only the wheel (and its dependencies) was installed."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True, clear=True)
    python = home / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel], env=_clean_env())
    return python


@pytest.fixture
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


def test_wheel_contains_license_typing_marker_and_every_lua_script(wheel: Path) -> None:
    # Given the repository's scripts
    folder = REPO_ROOT / "mageflow_celery" / "state" / "scripts"
    scripts = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.lua"))
    assert "report.lua" in scripts and "_lib.lua" in scripts and "due/peek.lua" in scripts

    # When the wheel is listed
    names = zipfile.ZipFile(wheel).namelist()

    # Then it ships the license, the typing marker and each script
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), names
    assert "mageflow_celery/py.typed" in names
    prefix = "mageflow_celery/state/scripts/"
    assert sorted(n[len(prefix) :] for n in names if n.startswith(prefix)) == sorted([*scripts, "__init__.py"])


def test_wheel_ships_the_dashboard_files_and_keeps_its_dependencies_in_the_extra(wheel: Path) -> None:
    # Given the dashboard's templates and static files in the repository
    package = REPO_ROOT / "mageflow_celery" / "ops" / "dashboard"
    data = sorted(str(p.relative_to(REPO_ROOT)) for p in package.rglob("*") if p.suffix in (".html", ".css", ".js"))
    assert len(data) >= 6

    # When the wheel is read
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    requires = [line for line in archive.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]

    # Then every one of them is in it, and Starlette, uvicorn, Jinja2 and prometheus_client only in the extra
    assert [n for n in data if n not in names] == []
    optional = ("starlette", "uvicorn", "jinja2", "prometheus-client")
    assert [r for r in requires if r.split()[1].startswith(optional) and "extra == 'dashboard'" not in r] == []
    assert sum("extra == 'dashboard'" in r for r in requires) == len(optional)


def test_a_swarm_runs_end_to_end_from_the_installed_wheel(fresh_python: Path, redis_url: str, tmp_path: Path) -> None:
    # Given an app module and a client script outside the checkout, and a worker of the fresh venv
    (tmp_path / "packaged_app.py").write_text(APP_MODULE)
    (tmp_path / "client.py").write_text(CLIENT_SCRIPT.format(timeout=SWARM_TIMEOUT_S))
    env = _clean_env(PACKAGING_TEST_REDIS_URL=redis_url, PYTHONPATH=str(tmp_path))
    celery = fresh_python.parent / "celery"
    worker_log = tmp_path / "worker.log"
    with open(worker_log, "w") as log:
        worker = subprocess.Popen(
            [str(celery), "-A", "packaged_app", "worker", "-P", "solo", "--without-gossip", "--without-mingle"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # When the client starts a 3-member swarm with a success callback and waits for it
        done = subprocess.run(
            [str(fresh_python), "client.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=SWARM_TIMEOUT_S * 3,
            check=False,
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    log_text = worker_log.read_text()
    assert done.returncode == 0, f"client failed:\n{done.stdout}\n{done.stderr}\nworker log:\n{log_text[-4000:]}"

    # Then the package came from the fresh venv, and the results and the callback's sum are printed
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["package"].startswith(str(fresh_python.parent.parent)), lines["package"]
    assert lines["results"] == "[2, 4, 6]"
    assert lines["callback"] == "12"
