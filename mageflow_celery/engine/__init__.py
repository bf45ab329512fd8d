"""The engine: what follows a state transition, wherever it ran (see ``docs/architecture.md``).

The client, the worker and the eager driver all perform transitions through the state layer and hand
the result here: :mod:`.dispatch` publishes admitted members, :mod:`.finalize` publishes the callbacks
of a finished swarm, :mod:`.members` builds a member's message. :mod:`.runtime` holds what one app
needs (settings, the store, codecs). The engine imports only the state layer and shared modules.
"""
