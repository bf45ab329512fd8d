"""The project's own tests use the mageflow pytest plugin, so it is exercised on every run."""

from __future__ import annotations

import pytest

import mageflow_celery.testing.plugin as mageflow_plugin

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    # Installed (``./dev``, tox, CI), the ``pytest11`` entry point has already registered the plugin;
    # from a bare checkout (or with ``-p mageflow_celery.testing.plugin``) register it only if missing.
    if not config.pluginmanager.is_registered(mageflow_plugin):
        config.pluginmanager.register(mageflow_plugin, "mageflow")
