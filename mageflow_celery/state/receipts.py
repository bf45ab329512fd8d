"""Receipts sent without waiting: ``receive.lua`` calls written on a connection of their own, their replies
read later, in order, when the caller's event loop says the connection is readable.

The worker's start gate (:mod:`mageflow_celery.worker.gate`) uses it so that a member's receipt does not
hold up the consumer: while Redis answers, the consumer reads the next message. Only for a standalone or
Sentinel-managed Redis over plain TCP (:func:`pipelinable`); the gate calls :class:`SwarmStore` directly
otherwise.

Layer: ``state`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import redis

from .records import Receipt, receipt_from
from .store import SwarmStore, receive_args

#: The connection's name in ``CLIENT LIST``, unless the state URL names its connections (``client_name``).
CLIENT_NAME = "mageflow-gate"


def pipelinable(client: Any) -> bool:
    """Whether receipts can be pipelined on ``client``'s Redis: a plain :class:`redis.Redis` (standalone or
    Sentinel), not a Cluster (one connection cannot reach every slot) and not TLS (an SSL socket can hold
    decrypted bytes the event loop would not see as readable)."""
    if not isinstance(client, redis.Redis):
        return False
    connection_class = client.connection_pool.connection_class
    return isinstance(connection_class, type) and not issubclass(connection_class, redis.SSLConnection)


class ReceiptChannel:
    """One connection to the state Redis on which ``receive`` calls are pipelined.

    Example (what the gate does, with an event loop calling ``on_readable``)::

        channel = ReceiptChannel(store)
        channel.send(swarm_id, index, step, token, epoch, "")
        ...
        for receipt in channel.replies():  # in the order the calls were sent
            ...
    """

    def __init__(self, store: SwarmStore) -> None:
        self._store = store
        self._sha = store.script_sha("receive")
        self._conn: Any = cast(Any, store.client.connection_pool.make_connection())  # redis-py leaves it untyped
        try:
            self._conn.connect()
            if not store.client.connection_pool.connection_kwargs.get("client_name"):
                self._conn.send_command("CLIENT", "SETNAME", CLIENT_NAME)
                self._conn.read_response()
        except Exception:
            self._conn.disconnect()
            raise

    def fileno(self) -> int:
        """The connection's socket, for the event loop to watch."""
        return int(self._conn._sock.fileno())

    def send(self, swarm_id: str, index: int, step: int, token: str, epoch: int | None, prev_token: str) -> None:
        """Write one ``receive`` call (see :meth:`SwarmStore.receive_full`) without reading its reply."""
        keys = self._store.keys(swarm_id).all()
        args = receive_args(index, step, token, epoch, prev_token)
        self._conn.send_command("EVALSHA", self._sha, len(keys), *keys, *args)
        self._store.calls += 1

    def replies(self) -> Iterator[Receipt | redis.ResponseError]:
        """The replies readable now, oldest call first: a receipt, or the error Redis answered that call
        with (``NOSCRIPT`` after a restart, say; the connection stays usable). Connection errors are raised."""
        while True:
            reply: Receipt | redis.ResponseError
            try:
                reply = receipt_from(self._conn.read_response())
            except redis.ResponseError as exc:
                reply = exc
            yield reply
            if not self._conn.can_read(timeout=0):
                return

    def close(self) -> None:
        self._conn.disconnect()
