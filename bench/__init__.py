"""Benchmark of mageflow_celery swarms against plain Celery (``python -m bench.run``; docs/performance.md)."""
