"""Who is calling: a staff member, a household or a B2B client, always inside exactly one tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from citygas.platform.context import Actor


@dataclass(frozen=True)
class Principal:
    kind: str  # staff | customer | api_key
    id: uuid.UUID
    tenant_id: uuid.UUID
    label: str
    roles: frozenset[str]
    permissions: frozenset[str]
    session_id: uuid.UUID | None = None
    csrf_token: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(kind=self.kind, id=self.id, label=self.label)

    def can(self, permission: str) -> bool:
        return permission in self.permissions
