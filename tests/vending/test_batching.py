"""The batched vend: `do_vends` writes the vends of many requests together, each exactly as it would have
been written alone; `VendBatcher` groups the API's concurrent requests into such batches and, when a batch
fails, writes its requests one at a time, so that every key still vends exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select

from citygas.customers.service import do_register_customer
from citygas.identity.principal import Principal
from citygas.identity.service import do_create_api_key
from citygas.ledger.models import JournalEntry, Posting
from citygas.ledger.rules import AccountCode
from citygas.ledger.service import get_balance
from citygas.meters.rules import sts_meter_number
from citygas.meters.service import (
    do_meter_transition,
    do_register_meter,
)
from citygas.platform import time as clock
from citygas.platform.audit import AuditEntry, verify_chain
from citygas.platform.errors import NotFound
from citygas.platform.numbers import NumberKind, NumberSequence
from citygas.platform.settings import Settings
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from citygas.vending import service as vending
from citygas.vending.batching import VendAnswer, VendBatcher, _Waiting
from citygas.vending.models import Vend, VendClaim
from citygas.vending.rules import Channel, VendRequest
from citygas.vending.service import (
    Deferred,
    IdempotencyConflict,
    VendOutcome,
    VendRefused,
    VendResult,
    do_vend,
    do_vends,
)
from citygas.web.app import create_app
from tests.conftest import make_tenant
from tests.support.meters import MASTER, add_g16_and_test_key
from tests.vending.conftest import START, Shop, price_every_area, simulated_meter

STEPS = ["claimed", "priced", "tokens", "posted", "recorded"]
HOUSEHOLDS = 8
RATES_FROM = START - timedelta(days=1)
EVERYTHING = frozenset({"meter.manage", "meter.install"})


# --- the world: a CGD with several households, each with an active meter -----------------------------


@dataclass(frozen=True)
class Town:
    tenant: Tenant

    def consumer(self, n: int) -> str:
        return f"{self.tenant.code}-C-{n:08d}"

    def receipt(self, n: int) -> str:
        return f"{self.tenant.code}-R-{n:08d}"

    def shop(self, n: int) -> Shop:
        """Household n as `simulated_meter` takes it."""
        return Shop(self.tenant, consumer_number=self.consumer(n), serial=f"SN{n:04d}")


def build_town(db: Database, slug: str, code: str, households: int) -> Town:
    """As `ready_to_vend`, for `households` households (1..n): household n is customer {code}-C-n with the
    active currency-mode meter SN000n, numbered `sts_meter_number(n)` on the STS test key. Two towns built
    alike give the same meters the same decoder keys, so the same vend makes the same tokens in both."""
    tenant = make_tenant(db, slug, code)
    town = Town(tenant)
    with db.unit_of_work(tenant=tenant.id) as uow:
        s = uow.session
        add_g16_and_test_key(s)
        price_every_area(s, RATES_FROM)
        for n in range(1, households + 1):
            customer = do_register_customer(
                s, name=f"House {n}", phone="9812345678", charge_area_code=f"{code}-CA1", address=f"{n} A St"
            )
            assert customer.consumer_number == town.consumer(n)
            meter = do_register_meter(
                s,
                serial=town.shop(n).serial,
                sts_meter_number=sts_meter_number(n),
                model_code="G1.6",
                vending_key_id="test",
            )
            for action in ("allocate", "install", "commission", "activate"):
                do_meter_transition(
                    s,
                    meter,
                    action,
                    permissions=EVERYTHING,
                    customer_number=customer.consumer_number if action == "install" else None,
                )
        uow.commit()
    return town


@pytest.fixture
def town(db: Database) -> Iterator[Town]:
    # The batcher vends at the clock's time: frozen, the rates are in force and the TIDs are known.
    clock.freeze(START)
    yield build_town(db, "alpha", "ALP", HOUSEHOLDS)
    clock.freeze(None)


# --- vending ----------------------------------------------------------------------------------------


def _request(town: Town, n: int, amount: int = 50_000, key: str | None = None) -> VendRequest:
    return VendRequest(
        channel=Channel.ONLINE,
        amount_paise=amount,
        idempotency_key=key or f"pay-{n}",
        consumer_number=town.consumer(n),
    )


def _vend_batch(
    db: Database, town: Town, requests: Sequence[VendRequest], request_ids: Sequence[str] | None = None
) -> list[VendResult]:
    """One `do_vends` in one transaction, committed as the batcher commits it."""
    with db.unit_of_work(tenant=town.tenant.id, request_id="the-batch") as uow:
        results = do_vends(uow.session, requests, master_key=MASTER, now=START, request_ids=request_ids)
        uow.commit()
    return results


def _vend_alone(db: Database, town: Town, request: VendRequest) -> VendOutcome:
    with db.unit_of_work(tenant=town.tenant.id) as uow:
        outcome = do_vend(uow.session, request, master_key=MASTER, now=START)
        uow.commit()
    return outcome


def _new(results: Sequence[VendResult]) -> list[Vend]:
    """The vends of results that must all be new."""
    assert all(isinstance(r, VendOutcome) and not r.replayed for r in results), results
    return [r.vend for r in results if isinstance(r, VendOutcome)]


def _batcher(db: Database) -> VendBatcher:
    """A batcher for calling `write` directly: it is made in an event loop, which `write` never uses."""

    async def make() -> VendBatcher:
        return VendBatcher(db, MASTER)

    return asyncio.run(make())


def _principal(town: Town) -> Principal:
    return Principal(
        kind="api_key",
        id=uuid.uuid4(),
        tenant_id=town.tenant.id,
        label="SAP",
        roles=frozenset(),
        permissions=frozenset({"vend.create"}),
    )


class PowerCut:
    """A vend checkpoint that fails the first `times` passes through `step`, and notes every pass."""

    def __init__(self, step: str, times: int = 1_000_000) -> None:
        self.step, self.left = step, times
        self.passes: list[str] = []

    def __call__(self, at: str) -> None:
        self.passes.append(at)
        if at == self.step and self.left > 0:
            self.left -= 1
            raise RuntimeError(f"power cut at {at}")


# --- reading the books ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Books:
    """Everything a vend writes that a refusal or a crash must leave as it was."""

    vends: dict[str, str]  # idempotency key → receipt number
    claims: frozenset[str]
    entries: frozenset[str]  # ledger entry idempotency keys
    receipts_taken: int  # the tenant's receipt counter


def _books(db: Database, town: Town) -> Books:
    with db.unit_of_work(tenant=town.tenant.id, read_only=True) as uow:
        s = uow.session
        vends: dict[str, str] = dict(s.execute(select(Vend.idempotency_key, Vend.receipt_number)).all())
        claims = s.execute(select(VendClaim.idempotency_key).where(VendClaim.tenant_id == town.tenant.id))
        entries = s.execute(select(JournalEntry.idempotency_key)).scalars()
        counter = s.execute(
            select(NumberSequence.last_value).where(
                NumberSequence.tenant_id == town.tenant.id, NumberSequence.kind == NumberKind.RECEIPT.value
            )
        ).scalar_one_or_none()
        return Books(vends, frozenset(claims.scalars()), frozenset(entries), counter or 0)


def _unbalanced_entries(db: Database, town: Town) -> list[Any]:
    with db.unit_of_work(tenant=town.tenant.id, read_only=True) as uow:
        total = func.sum(Posting.amount_paise)
        rows = uow.session.execute(select(Posting.entry_id).group_by(Posting.entry_id).having(total != 0))
        return list(rows.scalars())


def _entry_lines(db: Database, town: Town, vend: Vend) -> tuple[str, list[int]]:
    """The reference of the vend's ledger entry and its lines' amounts."""
    with db.unit_of_work(tenant=town.tenant.id, read_only=True) as uow:
        entry = uow.session.get(JournalEntry, vend.ledger_entry_id)
        assert entry is not None, f"vend {vend.receipt_number} has no ledger entry"
        lines = uow.session.execute(select(Posting.amount_paise).where(Posting.entry_id == entry.id))
        return entry.reference, list(lines.scalars())


def _credit_held(db: Database, town: Town, customer_id: uuid.UUID) -> int:
    with db.unit_of_work(tenant=town.tenant.id, read_only=True) as uow:
        return get_balance(uow.session, AccountCode.CUSTOMER_CREDIT, customer_id)


def _request_id_of(db: Database, town: Town, entity_type: str, entity_id: object) -> str | None:
    with db.unit_of_work(tenant=town.tenant.id, read_only=True) as uow:
        return uow.session.execute(
            select(AuditEntry.request_id).where(
                AuditEntry.entity_type == entity_type,
                AuditEntry.entity_id == str(entity_id),
                AuditEntry.action == f"{entity_type}.create",
            )
        ).scalar_one()


def _chain_breaks(db: Database) -> list[Any]:
    with db.system(read_only=True) as uow:  # `citygas audit verify`: the platform scope
        return list(verify_chain(uow.session))


def _as_made(vend: Vend) -> tuple[Any, ...]:
    """A vend without what names it (id, receipt, tenant, customer): what the household gets. Its tokens
    by kind and TID: an STS token carries a random nibble, so the same credit is never the same digits
    twice (that the digits credit the meter exactly is tested on the meter)."""
    return (
        vend.amount_paise,
        vend.gas_credit_paise,
        vend.gas_litres,
        vend.vat_paise,
        vend.rounding_paise,
        vend.rate_paise_per_scm,
        vend.deductions,
        [(t["kind"], t["tid"]) for t in vend.tokens],
    )


# --- a batch of good requests -------------------------------------------------------------------------

AMOUNTS = [50_000, 20_000, 35_000, 100_000, 7_500]


def test_a_batch_vends_each_household_once_with_consecutive_receipts_and_balanced_entries(
    db: Database, town: Town
) -> None:
    vends = _new(_vend_batch(db, town, [_request(town, n, a) for n, a in enumerate(AMOUNTS, start=1)]))
    assert sorted(v.receipt_number for v in vends) == [town.receipt(n) for n in range(1, len(AMOUNTS) + 1)]
    assert [v.amount_paise for v in vends] == AMOUNTS  # each result answers its own request
    for vend in vends:
        reference, lines = _entry_lines(db, town, vend)
        assert (reference, len(lines) >= 2, sum(lines)) == (f"vend {vend.id}", True, 0)
        assert _credit_held(db, town, vend.customer_id) == vend.gas_credit_paise
    assert _unbalanced_entries(db, town) == []
    books = _books(db, town)
    assert (len(books.vends), len(books.claims), len(books.entries), books.receipts_taken) == (5, 5, 5, 5)


def test_a_batch_makes_exactly_the_vends_and_tokens_that_one_at_a_time_would(
    db: Database, town: Town
) -> None:
    # A second CGD, built alike, vends the same requests one at a time at the same moment: its meters have
    # the same decoder keys and TIDs, so the batch must give every household the same vend and tokens.
    other = build_town(db, "bravo", "BRV", len(AMOUNTS))
    batched = _new(_vend_batch(db, town, [_request(town, n, a) for n, a in enumerate(AMOUNTS, start=1)]))
    alone = [_vend_alone(db, other, _request(other, n, a)).vend for n, a in enumerate(AMOUNTS, start=1)]
    assert [_as_made(v) for v in batched] == [_as_made(v) for v in alone]
    assert batched[0].gas_credit_paise == 48_550  # ₹500 as in test_vend: the same rules ran


def test_a_batch_costs_a_statement_per_kind_of_row_not_one_per_vend(db: Database, town: Town) -> None:
    # First vends send every meter its tariff (a meter row update each); the second ones are the steady
    # state the batch is built for.
    _new(_vend_batch(db, town, [_request(town, n, key=f"first-{n}") for n in range(1, HOUSEHOLDS + 1)]))
    with _statements(db) as two:
        _new(_vend_batch(db, town, [_request(town, n, key=f"again-{n}") for n in (1, 2)]))
    with _statements(db) as six:
        _new(_vend_batch(db, town, [_request(town, n, key=f"again-{n}") for n in range(3, HOUSEHOLDS + 1)]))
    # PostgreSQL reads the contexts and moves the TIDs of a whole batch in one statement each; SQLite,
    # embedded and without arrays, in one statement per vend for those two.
    per_vend = 0 if db.engine.dialect.name == "postgresql" else 2
    assert len(six) == len(two) + per_vend * (HOUSEHOLDS - 2 - 2), (two, six)


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(" ".join(statement.split())[:60])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_the_tokens_of_every_vend_of_a_batch_credit_its_meter_exactly(db: Database, town: Town) -> None:
    vends = _new(_vend_batch(db, town, [_request(town, n, a) for n, a in enumerate(AMOUNTS, start=1)]))
    for n, vend in enumerate(vends, start=1):
        meter = simulated_meter(db, town.shop(n))
        accepted = [meter.enter_token(t["token"]).outcome.accepted for t in vend.tokens]
        assert (accepted, meter.credit) == ([True, True], vend.gas_credit_paise), town.shop(n).serial


# --- refusals, replays and conflicts in a batch -------------------------------------------------------


def test_a_mixed_batch_vends_the_good_request_and_leaves_nothing_of_the_refused_ones(
    db: Database, town: Town
) -> None:
    first = _vend_alone(db, town, _request(town, 2, key="paid-before")).vend
    _vend_alone(db, town, _request(town, 3, key="used-key"))
    before = _books(db, town)
    good, tiny, ghost, again, clash = _vend_batch(
        db,
        town,
        [
            _request(town, 1, key="good"),
            _request(town, 4, 100, key="tiny"),
            VendRequest(Channel.ONLINE, 50_000, "ghost", consumer_number="ALP-C-99999999"),
            _request(town, 2, key="paid-before"),
            _request(town, 3, 60_000, key="used-key"),
        ],
    )
    assert isinstance(good, VendOutcome)
    assert (good.replayed, good.vend.receipt_number) == (False, town.receipt(3))
    assert isinstance(tiny, VendRefused)
    assert tiny.code == "amount_out_of_range"
    assert isinstance(ghost, NotFound)
    assert isinstance(again, VendOutcome)
    assert (again.replayed, again.vend.id) == (True, first.id)
    assert isinstance(clash, IdempotencyConflict)
    after = _books(db, town)
    assert after.vends == {**before.vends, "good": town.receipt(3)}
    assert after.claims == before.claims | {"good"}  # the refused requests' claims were withdrawn
    assert after.entries == before.entries | {"vend:good"}
    assert after.receipts_taken == 3


def test_a_key_refused_in_a_batch_vends_normally_when_retried_with_a_good_request(
    db: Database, town: Town
) -> None:
    _good, refused = _vend_batch(
        db, town, [_request(town, 1, key="good"), _request(town, 4, 100, key="tiny")]
    )
    assert isinstance(refused, VendRefused)
    (retried,) = _vend_batch(db, town, [_request(town, 4, 50_000, key="tiny")])
    assert isinstance(retried, VendOutcome)
    assert (retried.replayed, retried.vend.receipt_number) == (False, town.receipt(2))
    assert _books(db, town).vends == {"good": town.receipt(1), "tiny": town.receipt(2)}


# --- what a batch defers --------------------------------------------------------------------------------


def test_the_same_key_twice_in_a_batch_defers_the_second_which_then_replays_the_first(
    db: Database, town: Town
) -> None:
    first, second = _vend_batch(db, town, [_request(town, 1, key="k"), _request(town, 1, key="k")])
    (vend,) = _new([first])
    assert isinstance(second, Deferred)
    assert _books(db, town).vends == {"k": town.receipt(1)}
    later = _vend_alone(db, town, _request(town, 1, key="k"))
    assert (later.replayed, later.vend.id) == (True, vend.id)
    assert _books(db, town).vends == {"k": town.receipt(1)}


def test_the_same_household_twice_in_a_batch_defers_the_second_which_then_vends_alone(
    db: Database, town: Town
) -> None:
    first, second = _vend_batch(db, town, [_request(town, 2, key="a"), _request(town, 2, 20_000, key="b")])
    (vend,) = _new([first])
    assert isinstance(second, Deferred)
    books = _books(db, town)
    assert (books.vends, set(books.claims), set(books.entries)) == ({"a": town.receipt(1)}, {"a"}, {"vend:a"})
    later = _vend_alone(db, town, _request(town, 2, 20_000, key="b"))
    assert (later.replayed, later.vend.receipt_number) == (False, town.receipt(2))
    held = _credit_held(db, town, vend.customer_id)
    assert held == vend.gas_credit_paise + later.vend.gas_credit_paise


# --- the audit trail ----------------------------------------------------------------------------------


REQUEST_IDS = ["req-1", "req-2", "req-3"]


def test_each_vend_of_a_batch_is_audited_under_its_own_request_id_and_the_chain_verifies(
    db: Database, town: Town
) -> None:
    vends = _new(_vend_batch(db, town, [_request(town, n) for n in (1, 2, 3)], request_ids=REQUEST_IDS))
    assert [_request_id_of(db, town, "vend", v.id) for v in vends] == REQUEST_IDS
    assert _chain_breaks(db) == []


def test_each_ledger_entry_of_a_batch_is_audited_under_its_vends_request_id(db: Database, town: Town) -> None:
    vends = _new(_vend_batch(db, town, [_request(town, n) for n in (1, 2, 3)], request_ids=REQUEST_IDS))
    assert [_request_id_of(db, town, "ledger_entry", v.ledger_entry_id) for v in vends] == REQUEST_IDS


# --- failures: the batcher's fallback, and crashes ------------------------------------------------------


def test_a_batch_that_fails_in_its_writes_is_written_again_one_request_at_a_time(
    db: Database, town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    cut = PowerCut("posted", times=1)
    monkeypatch.setattr(vending, "checkpoint", cut)
    requests: list[tuple[VendRequest, str | None]] = [(_request(town, n), f"req-{n}") for n in (1, 2, 3, 4)]
    answers = _batcher(db).write(_principal(town), requests)
    assert all(isinstance(a, VendAnswer) and not a.replayed for a in answers), answers
    # The failed batch reached "posted" once; then each request was written in a batch of its own.
    assert cut.passes.count("posted") == 1 + len(requests)
    receipts = [a.body["receipt_number"] for a in answers if isinstance(a, VendAnswer)]
    assert receipts == [town.receipt(n) for n in (1, 2, 3, 4)]  # the failed batch took no number away
    books = _books(db, town)
    assert books.vends == dict(zip(["pay-1", "pay-2", "pay-3", "pay-4"], receipts, strict=True))
    assert (len(books.entries), books.receipts_taken) == (4, 4)
    assert _unbalanced_entries(db, town) == []


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_of_a_batch_leaves_nothing_and_the_retry_vends_each_once(
    db: Database, town: Town, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _vend_alone(db, town, _request(town, 1))  # so that the receipt counter and a claim exist already
    before = _books(db, town)
    requests = [_request(town, n) for n in (2, 3, 4)]
    monkeypatch.setattr(vending, "checkpoint", PowerCut(step))
    with pytest.raises(RuntimeError, match="power cut"):
        _vend_batch(db, town, requests)
    assert _books(db, town) == before
    monkeypatch.setattr(vending, "checkpoint", lambda _at: None)
    vends = _new(_vend_batch(db, town, requests))
    assert [v.receipt_number for v in vends] == [town.receipt(n) for n in (2, 3, 4)]
    assert _books(db, town).vends == {f"pay-{n}": town.receipt(n) for n in (1, 2, 3, 4)}
    assert _unbalanced_entries(db, town) == []


# --- concurrent requests through the API --------------------------------------------------------------


@pytest.fixture
def api_key(db: Database, town: Town) -> str:
    with db.unit_of_work(tenant=town.tenant.id) as uow:
        _, secret = do_create_api_key(uow.session, name="SAP", scopes=["vend"], created_by="test")
        uow.commit()
    return secret


def _concurrent_posts(town: Town) -> list[tuple[str, dict[str, object]]]:
    """14 payments over the 8 households (some twice a household), six of them sent twice at once."""
    posts: list[tuple[str, dict[str, object]]] = []
    for i in range(14):
        body = {"consumer_number": town.consumer(i % HOUSEHOLDS + 1), "amount_paise": 20_000 + 1_000 * i}
        posts += [(f"k{i}", body)] * (2 if i < 6 else 1)
    return posts


async def _post_all(
    app: Any, secret: str, posts: list[tuple[str, dict[str, object]]]
) -> list[httpx.Response]:
    """All the posts at once, in one event loop: the batcher sees them arrive together."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"Authorization": f"Bearer {secret}"}
    ) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/api/v1/vends", json=body, headers={"Idempotency-Key": key, "X-Request-Id": f"req-{n}"}
                )
                for n, (key, body) in enumerate(posts)
            )
        )


def test_concurrent_api_vends_are_batched_and_each_key_vends_once(
    db: Database, town: Town, api_key: str, settings: Settings
) -> None:
    app = create_app(settings.model_copy(update={"simulator": False}), db=db, run_worker=False)
    posts = _concurrent_posts(town)
    responses = asyncio.run(_post_all(app, api_key, posts))
    assert max(app.state.vend_batcher.batch_sizes) > 1, app.state.vend_batcher.batch_sizes
    by_key: dict[str, list[httpx.Response]] = defaultdict(list)
    for (key, _body), response in zip(posts, responses, strict=True):
        by_key[key].append(response)
    for key, answers in by_key.items():
        statuses = sorted(r.status_code for r in answers)
        assert statuses == sorted([201] + [200] * (len(answers) - 1)), (key, [r.text for r in answers])
        assert all(r.json() == answers[0].json() for r in answers), key
    created = [r for r in responses if r.status_code == 201]
    assert sorted(r.json()["receipt_number"] for r in created) == [town.receipt(n) for n in range(1, 15)]
    books = _books(db, town)
    assert (len(books.vends), books.receipts_taken) == (14, 14)
    for response in created:  # each audited under the id of the request that made it, though batched
        request_id = response.headers["x-request-id"]
        assert _request_id_of(db, town, "vend", response.json()["vend_id"]) == request_id
    assert _unbalanced_entries(db, town) == []
    assert _chain_breaks(db) == []


def test_one_busy_api_key_cannot_keep_another_waiting(db: Database, town: Town) -> None:
    # The queue as the event loop holds it, without writing: two keys' requests, batches of two.
    async def queue_then_take() -> list[str]:
        batcher = VendBatcher(db, MASTER, max_batch=2)
        busy, other = _principal(town), _principal(town)
        loop = asyncio.get_running_loop()
        for principal, n in ((busy, 1), (busy, 2), (busy, 3), (other, 4), (busy, 5)):
            queue = batcher._queues.setdefault((str(principal.tenant_id), str(principal.id)), (principal, []))
            queue[1].append(_Waiting(_request(town, n), None, loop.create_future()))
        order: list[str] = []
        while (taken := batcher._take()) is not None:
            order.append(",".join(w.request.idempotency_key for w in taken[1]))
        return order

    assert asyncio.run(queue_then_take()) == ["pay-1,pay-2", "pay-4", "pay-3,pay-5"]


def test_a_caller_who_went_away_before_its_turn_is_not_written(db: Database, town: Town) -> None:
    # A request whose caller disconnected (its future cancelled) while it waited is dropped from the
    # batch, so nothing is vended for nobody. Once its batch is being written, it stands (a retry replays).
    async def queue_then_take() -> list[str]:
        batcher = VendBatcher(db, MASTER)
        caller = _principal(town)
        loop = asyncio.get_running_loop()
        queue = batcher._queues.setdefault((str(caller.tenant_id), str(caller.id)), (caller, []))
        for n in (1, 2, 3):
            queue[1].append(_Waiting(_request(town, n), None, loop.create_future()))
        queue[1][1].future.cancel()
        taken = batcher._take()
        assert taken is not None
        return [w.request.idempotency_key for w in taken[1]]

    assert asyncio.run(queue_then_take()) == ["pay-1", "pay-3"]
