"""Encode and decode what is stored in Redis with the app's own serializers (``kombu.serialization``).

Layer: ``state`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kombu.exceptions import ContentDisallowed, DecodeError, EncodeError
from kombu.serialization import dumps, loads, prepare_accept_content

from .._compat import serializer_registry
from ..errors import MageflowError, NotSerializableError


class Codec:
    """One kombu serializer, by name (``json``, ``pickle``, ``msgpack``, ``yaml``...), decoding only what
    ``accept`` allows (the app's ``accept_content``, names or content types; ``None``: kombu's defaults).

    Example:
        >>> codec = Codec("pickle", accept=["pickle", "json"])
        >>> codec.loads(codec.dumps({"a": 1}))
        {'a': 1}
    """

    def __init__(self, serializer: str, accept: Iterable[str] | None = None) -> None:
        try:
            self.content_type, self.content_encoding, _ = serializer_registry._encoders[serializer]
        except KeyError:
            raise MageflowError(f"unknown serializer {serializer!r}") from None
        self.serializer = serializer
        self.accept: set[str] | None = prepare_accept_content(accept) if accept is not None else None

    def dumps(self, obj: Any, what: str = "value") -> bytes:
        """Encode ``obj``; raise :class:`NotSerializableError` naming ``what`` if the serializer cannot."""
        try:
            _, _, payload = dumps(obj, serializer=self.serializer)
        except (EncodeError, TypeError, ValueError) as exc:
            msg = f"{what} cannot be encoded with the {self.serializer!r} serializer: {exc}"
            raise NotSerializableError(msg) from exc
        return payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)

    def loads(self, data: bytes) -> Any:
        """Decode what :meth:`dumps` stored; a content type outside ``accept`` is refused."""
        try:
            return loads(data, self.content_type, self.content_encoding, accept=self.accept)
        except ContentDisallowed as exc:
            raise MageflowError(
                f"stored value is {self.serializer!r}, which accept_content does not allow: {exc}"
            ) from exc
        except DecodeError as exc:
            raise MageflowError(f"cannot decode stored value with {self.serializer!r}: {exc}") from exc
