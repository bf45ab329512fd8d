"""The worker layer: what runs inside a Celery worker (see ``docs/architecture.md``).

Signal receivers (``hooks``, ``endings``) hand outcomes to the per-process ``reporter``; ``lease``
renews the leases of members the worker holds; ``reaper`` recovers what vanished. Wired into an app
by :func:`mageflow_celery.install`. It never imports the client layer.
"""
