"""The state layer: the only code that talks to the state Redis (see ``docs/architecture.md``).

``store.SwarmStore`` has one typed method per Lua script (``scripts/*.lua``, one atomic transition
each) plus plain reads; ``codec.Codec`` encodes what is stored with the app's serializers. Nothing
here imports from a layer above (engine, client, worker, ops).
"""
