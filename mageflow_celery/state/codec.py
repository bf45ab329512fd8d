"""Encode and decode what is stored in Redis with the app's own serializers (``kombu.serialization``).

Layer: ``state`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from typing import Any

from kombu.exceptions import DecodeError, EncodeError
from kombu.serialization import dumps, loads

from .._compat import serializer_registry
from ..errors import MageflowError, NotSerializableError


class Codec:
    """One kombu serializer, by name (``json``, ``pickle``, ``msgpack``, ``yaml``...)."""

    def __init__(self, serializer: str) -> None:
        try:
            self.content_type, self.content_encoding, _ = serializer_registry._encoders[serializer]
        except KeyError:
            raise MageflowError(f"unknown serializer {serializer!r}") from None
        self.serializer = serializer

    def dumps(self, obj: Any, what: str = "value") -> bytes:
        """Encode ``obj``; raise :class:`NotSerializableError` naming ``what`` if the serializer cannot."""
        try:
            _, _, payload = dumps(obj, serializer=self.serializer)
        except (EncodeError, TypeError, ValueError) as exc:
            msg = f"{what} cannot be encoded with the {self.serializer!r} serializer: {exc}"
            raise NotSerializableError(msg) from exc
        return payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)

    def loads(self, data: bytes) -> Any:
        try:
            return loads(data, self.content_type, self.content_encoding, accept=None)
        except DecodeError as exc:
            raise MageflowError(f"cannot decode stored value with {self.serializer!r}: {exc}") from exc
