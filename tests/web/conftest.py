"""Fixtures of the web tests."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from citygas.identity import service as identity_service


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 at production cost takes ~0.15 s a hash, and the world fixture hashes 18 passwords.
    These tests are about who may reach what, not about hash cost, so they hash cheaply; the hash is
    still argon2id and is verified the same way."""
    monkeypatch.setattr(identity_service, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
