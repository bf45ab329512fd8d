"""The client surface: what a web app, a script or a task calls (see ``docs/architecture.md``).

``canvas`` (:class:`Swarm`, :func:`swarm`), ``membership`` (member handles), ``result``
(:class:`SwarmResult`), ``seed`` (the MageFlow-style :class:`Mageflow` client), ``aio`` (coroutines).
It performs transitions through the state layer and follows them with :mod:`.drive` (the engine, or
the eager driver). It never imports the worker layer.
"""
