"""API keys are remembered for a few seconds per process, so a call needs no look-up transaction — but a
key revoked in this process stops working at once, and one revoked elsewhere within the TTL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from citygas.identity import service as identity
from citygas.identity.models import ApiKey
from citygas.identity.principal import Principal
from citygas.platform.time import utcnow
from citygas.platform.uow import Database
from tests.conftest import csrf_from
from tests.identity.test_api_keys import api, assert_problem, manager, new_key

__all__ = ["manager"]  # the fixture, imported to be found


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    fake = FakeClock()
    monkeypatch.setattr(identity.api_key_cache, "clock", fake)
    identity.api_key_cache.clear()
    yield fake
    identity.api_key_cache.clear()


@pytest.fixture
def api_key_reads(db: Database) -> Iterator[list[str]]:
    reads: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "api_key.prefix = " in statement:  # the look-up of a presented key
            reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    yield reads
    event.remove(db.engine, "before_cursor_execute", seen)


def key_id_of(db: Database) -> uuid.UUID:
    with db.system(read_only=True) as uow:
        return uow.session.execute(select(ApiKey.id)).scalar_one()


def revoke_in_portal(client: TestClient, key_id: uuid.UUID) -> None:
    token = csrf_from(client.get("/cgd/api-keys").text)
    response = client.post(
        f"/cgd/api-keys/{key_id}/revoke", data={"csrf_token": token}, follow_redirects=False
    )
    assert response.status_code == 303


def test_a_key_seen_recently_is_not_looked_up_again(
    manager: TestClient, clock: FakeClock, api_key_reads: list[str]
) -> None:
    key = new_key(manager)

    assert api(manager, "/api/v1/customers", key).status_code == 200
    clock.now += identity.API_KEY_CACHE_SECONDS - 0.1
    assert api(manager, "/api/v1/customers", key).status_code == 200
    assert len(api_key_reads) == 1

    clock.now += 0.1  # the TTL is up: looked up again
    assert api(manager, "/api/v1/customers", key).status_code == 200
    assert len(api_key_reads) == 2


def test_a_key_revoked_in_this_process_is_refused_at_once(
    manager: TestClient, db: Database, clock: FakeClock
) -> None:
    key = new_key(manager)
    assert api(manager, "/api/v1/customers", key).status_code == 200

    revoke_in_portal(manager, key_id_of(db))

    assert_problem(api(manager, "/api/v1/customers", key), 401, "unauthenticated")


def test_a_key_revoked_by_another_process_is_refused_within_the_ttl(
    manager: TestClient, db: Database, clock: FakeClock
) -> None:
    key = new_key(manager)
    assert api(manager, "/api/v1/customers", key).status_code == 200
    with db.system() as uow:  # another web process revoking it: this process is not told
        uow.session.execute(update(ApiKey).values(revoked_at=utcnow()))
        uow.commit()

    clock.now += identity.API_KEY_CACHE_SECONDS

    assert_problem(api(manager, "/api/v1/customers", key), 401, "unauthenticated")


def test_only_valid_keys_are_remembered_and_only_as_a_hash(manager: TestClient, clock: FakeClock) -> None:
    key = new_key(manager)
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")

    assert_problem(api(manager, "/api/v1/customers", tampered), 401, "unauthenticated")
    assert identity.api_key_cache._entries == {}
    assert api(manager, "/api/v1/customers", key).status_code == 200
    assert list(identity.api_key_cache._entries) == [identity.sha256_hex(key)]


def test_a_revocation_rolled_back_leaves_the_key_working(
    manager: TestClient, db: Database, clock: FakeClock
) -> None:
    key = new_key(manager)
    assert api(manager, "/api/v1/customers", key).status_code == 200
    key_id = key_id_of(db)
    with db.system() as uow:
        identity.do_revoke_api_key(uow.session, key_id)
        uow.rollback()

    assert api(manager, "/api/v1/customers", key).status_code == 200
    with db.system(read_only=True) as uow:
        assert uow.session.get(ApiKey, key_id).revoked_at is None  # type: ignore[union-attr]


def principal(key_id: uuid.UUID) -> Principal:
    return Principal("api_key", key_id, uuid.uuid4(), "API key test", frozenset(), frozenset({"x"}))


def test_a_look_up_begun_before_a_revocation_is_not_remembered() -> None:
    cache = identity.ApiKeyCache(clock=FakeClock())
    key_id = uuid.uuid4()
    ticket = cache.ticket()  # a request reads the key row, still unrevoked ...
    cache.forget(key_id)  # ... while the key is revoked here

    cache.put("cg_abc_secret", principal(key_id), ticket)

    assert cache.get("cg_abc_secret") is None


def test_an_entry_expires_counting_from_the_start_of_its_look_up() -> None:
    clock = FakeClock()
    cache = identity.ApiKeyCache(ttl_seconds=5.0, clock=clock)
    ticket = cache.ticket()
    clock.now += 4.0  # a slow look-up
    cache.put("cg_abc_secret", principal(uuid.uuid4()), ticket)

    clock.now += 0.9
    assert cache.get("cg_abc_secret") is not None
    clock.now += 0.1
    assert cache.get("cg_abc_secret") is None


def test_the_cache_stays_bounded() -> None:
    clock = FakeClock()
    cache = identity.ApiKeyCache(ttl_seconds=5.0, clock=clock, max_entries=3)
    for n in range(10):
        cache.put(f"cg_abc_{n}", principal(uuid.uuid4()), cache.ticket())
        assert len(cache._entries) <= 3
    assert cache.get("cg_abc_9") is not None
