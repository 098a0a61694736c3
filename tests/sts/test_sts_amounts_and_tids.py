"""The 16-bit amount encoding, amount conventions, TIDs and key expiry."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from citygas.sts import (
    GAS_CURRENCY_TENTH_RUPEE,
    GAS_VOLUME_TENTH_SCM,
    MAX_AMOUNT,
    AmountOutOfRangeError,
    InMemoryTidStore,
    KeyExpiredError,
    TidExhaustedError,
    check_key_not_expired,
    decode_amount,
    encode_amount,
    issue_time,
    key_expiry_tid,
    minutes_since_base_date,
    next_base_date,
    next_tid,
)


@pytest.mark.parametrize(
    ("requested", "field", "carried"),
    [
        (0, 0x0000, 0),
        (1, 0x0001, 1),
        (16383, 0x3FFF, 16383),
        (16384, 0x4000, 16384),
        (20000, 0x416A, 20004),
        (180223, 0x8000, 180224),
        (1818623, 0xC000, 1818624),
        (MAX_AMOUNT, 0xFFFF, 18_201_624),
    ],
)
def test_amount_is_rounded_up_to_the_next_representable_value(
    requested: int, field: int, carried: int
) -> None:
    encoded = encode_amount(requested)
    assert (encoded.field, encoded.carried) == (field, carried)
    assert decode_amount(field) == carried


def test_every_field_value_reencodes_to_itself() -> None:
    for field in range(0x10000):
        assert encode_amount(decode_amount(field)).field == field


@pytest.mark.parametrize("requested", [-1, MAX_AMOUNT + 1])
def test_amounts_outside_the_field_are_refused(requested: int) -> None:
    with pytest.raises(AmountOutOfRangeError):
        encode_amount(requested)


def test_gas_volume_convention_rounds_litres_up_to_tenths_of_a_cubic_metre() -> None:
    # Given a request for 2.55 SCM (2550 L) on a 0.1 SCM per count meter
    encoded, carried_litres = GAS_VOLUME_TENTH_SCM.quantise(2550)
    # Then the token carries 26 counts, i.e. 2600 L, and the ledger must record 2600 L
    assert (encoded.field, encoded.carried, carried_litres) == (26, 26, 2600)


def test_gas_currency_convention_is_tenths_of_a_rupee_by_default() -> None:
    # Given Rs 1,999.95 (199 995 paise) of gas credit
    encoded, carried_paise = GAS_CURRENCY_TENTH_RUPEE.quantise(199_995)
    # Then 20 000 tenths are requested, 20 004 tenths are carried, and Rs 2,000.40 is credited
    assert GAS_CURRENCY_TENTH_RUPEE.subclass == 6
    assert (encoded.field, encoded.carried, carried_paise) == (0x416A, 20004, 200_040)


def test_minutes_since_base_date_drops_seconds_and_needs_an_aware_time() -> None:
    moment = datetime(2004, 3, 1, 13, 0, 59, tzinfo=UTC)
    assert minutes_since_base_date(moment, 1993) == 5_871_660
    ist = timezone(timedelta(hours=5, minutes=30))
    assert minutes_since_base_date(datetime(2004, 3, 1, 18, 30, tzinfo=ist), 1993) == 5_871_660
    with pytest.raises(ValueError, match="timezone-aware"):
        minutes_since_base_date(datetime(2004, 3, 1, 13, 0), 1993)  # noqa: DTZ001 - the refusal under test


def test_issue_time_is_the_inverse_of_minutes_since_base_date() -> None:
    assert issue_time(480, 2014) == datetime(2014, 1, 1, 8, 0, tzinfo=UTC)


def test_tids_from_1993_run_out_in_november_2024() -> None:
    assert issue_time((1 << 24) - 1, 1993) == datetime(2024, 11, 24, 20, 15, tzinfo=UTC)
    with pytest.raises(TidExhaustedError):
        minutes_since_base_date(datetime(2024, 11, 24, 20, 16, tzinfo=UTC), 1993)


def test_next_tid_is_now_or_one_past_the_last_issued() -> None:
    assert next_tid(1000, None) == 1000
    assert next_tid(1000, 500) == 1000
    assert next_tid(1000, 1000) == 1001
    assert next_tid(1000, 1005) == 1006


def test_next_tid_refuses_to_leave_24_bits() -> None:
    with pytest.raises(TidExhaustedError, match="roll the meter over"):
        next_tid(100, (1 << 24) - 1)


def test_key_expiry_is_ken_times_65535() -> None:
    assert key_expiry_tid(255) == 16_711_425
    check_key_not_expired(16_711_425, 255)
    with pytest.raises(KeyExpiredError, match="KEN 255"):
        check_key_not_expired(16_711_426, 255)


def test_rollover_moves_to_the_next_base_date() -> None:
    assert next_base_date(1993) == 2014
    assert next_base_date(2014) == 2035
    with pytest.raises(ValueError, match="no base date after 2035"):
        next_base_date(2035)


def test_tid_store_never_hands_out_the_same_tid_twice_under_concurrency() -> None:
    # Given 8 threads vending to one meter in the same minute
    store = InMemoryTidStore()
    issued: list[int] = []
    lock = threading.Lock()

    def vend() -> None:
        for _ in range(250):
            tid = store.allocate_tid("600727000000000009", 5_000_000)
            with lock:
                issued.append(tid)

    threads = [threading.Thread(target=vend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then all 2000 TIDs are distinct and consecutive from the current minute
    assert sorted(issued) == list(range(5_000_000, 5_002_000))
    assert store.last_issued("600727000000000009") == 5_001_999


def test_tid_store_forgets_the_last_tid_after_a_rollover() -> None:
    store = InMemoryTidStore()
    store.allocate_tid("600727000000000009", 16_000_000)
    store.reset_for_rollover("600727000000000009")
    assert store.allocate_tid("600727000000000009", 5_700_000) == 5_700_000
