"""Messages as JSON-able dicts: the form the golden frames file records and the browser module's
decoder produces, so the two codecs are compared value for value.

``{"type": <MessageType name in lower case>, <field>: <value>, ...}`` with nested dataclasses as
objects, times as ``"YYYY-MM-DDTHH:MM:SSZ"``, dates as ``"YYYY-MM-DD"``, string enums by value,
integer enums (snapshot kind, error code) by lower-case name, alarm sets as sorted lists, tuples as
lists and bytes (MACs) as lower-case hex.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from enum import IntEnum, StrEnum
from typing import Any

from citygas.meters.link.messages import Message

__all__ = ["message_to_json"]


def message_to_json(message: Message) -> dict[str, Any]:
    return {"type": message.TYPE.name.lower(), **_fields(message)}


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: _value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _value(value: Any) -> Any:  # noqa: PLR0911 - one case per wire type
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, IntEnum):
        return value.name.lower()
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, frozenset):
        return sorted(_value(v) for v in value)
    if isinstance(value, tuple | list):
        return [_value(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    return value
