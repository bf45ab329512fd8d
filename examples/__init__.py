"""Runnable examples of mageflow_celery (see examples/README.md)."""
