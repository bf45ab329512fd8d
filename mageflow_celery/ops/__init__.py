"""Operations: the ``celery swarm`` command and read-only views (see ``docs/architecture.md``).

The top layer: it may use the client (handles by id) and the worker (a reaper pass by hand).
"""
