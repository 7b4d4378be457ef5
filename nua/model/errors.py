"""Typed errors of the data layer, one per kind of failure a caller can act on.

The RPC layer maps each kind to a stable JSON-RPC error code and sends ``data``
as the error's ``data`` member, so ``data`` holds only JSON values (never a
password or its hash) that tell the caller what to fix: which field, which id.
"""

from __future__ import annotations

from typing import Any, ClassVar

_UNSET: Any = object()


class ModelError(Exception):
    """Base of every error the data layer raises on purpose.

    ``kind`` is a stable machine name ("not_found", "conflict", "invalid",
    "unavailable", "internal"); ``data`` is a JSON-ready dict for the client.
    """

    kind: ClassVar[str] = "internal"

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data: dict[str, Any] = dict(data or {})


class NotFoundError(ModelError):
    """The row a command names does not exist. ``data``: ``entity`` and the key that was looked up."""

    kind = "not_found"

    def __init__(self, entity: str, **key: Any) -> None:
        described = ", ".join(f"{name}={value!r}" for name, value in key.items())
        super().__init__(f"no {entity} with {described}", {"entity": entity, **key})


class ConflictError(ModelError):
    """A unique field already holds this value. ``data``: ``entity``, ``field`` and ``value``."""

    kind = "conflict"

    def __init__(self, entity: str, field: str, value: Any) -> None:
        super().__init__(
            f"{entity} {field} {value!r} is already taken",
            {"entity": entity, "field": field, "value": value},
        )

    @property
    def field(self) -> str:
        return str(self.data["field"])


class InvalidError(ModelError):
    """A field is unknown, missing, or of a wrong type or value. ``data``: ``field`` and ``reason``.

    ``value`` is echoed when given and a JSON scalar (a string only up to
    :data:`ECHO_MAX` characters: an error must stay small whatever was sent);
    callers never pass a password.
    """

    kind = "invalid"

    def __init__(self, field: str, reason: str, *, value: Any = _UNSET) -> None:
        data: dict[str, Any] = {"field": field, "reason": reason}
        if value is not _UNSET and _json_scalar(value):
            data["value"] = value
        super().__init__(f"invalid {field}: {reason}", data)

    @property
    def field(self) -> str:
        return str(self.data["field"])


class InternalError(ModelError):
    """Anything unexpected: a database failure, a bug, a batch aborted by a crash.

    The message is safe to show; details go to the daemon's log.
    """

    kind = "internal"


class UnavailableError(ModelError):
    """The database cannot do this now (disk full, connection lost, file deleted); retry later.

    Nothing of the command was applied. ``data``: ``reason``, said for an operator
    (built from error codes, never from a statement or its parameters).
    """

    kind = "unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(f"database unavailable: {reason}", {"reason": reason})


# The longest string value an InvalidError repeats (every name a field takes is shorter).
ECHO_MAX = 1024


def _json_scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= ECHO_MAX
    return value is None or isinstance(value, int | float | bool)


__all__ = ["ConflictError", "InternalError", "InvalidError", "ModelError", "NotFoundError", "UnavailableError"]
