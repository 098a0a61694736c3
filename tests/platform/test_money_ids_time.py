from datetime import UTC, datetime

import pytest

from citygas.platform.ids import uuid7, uuid7_time_ms
from citygas.platform.money import AmountError, format_inr, format_scm, group_indian, parse_rupees
from citygas.platform.time import ensure_aware, format_india


def test_rupees_are_grouped_the_indian_way() -> None:
    assert format_inr(12345678) == "₹1,23,456.78"
    assert format_inr(100) == "₹1.00"
    assert group_indian("1234567890") == "1,23,45,67,890"


def test_negative_amounts_keep_their_sign() -> None:
    assert format_inr(-12345) == "₹-123.45"


def test_typed_rupees_become_exact_paise() -> None:
    assert parse_rupees("1,234.50") == 123450
    assert parse_rupees("₹ 99") == 9900
    assert parse_rupees("0.01") == 1


@pytest.mark.parametrize("text", ["", "abc", "1.234", "NaN", "Infinity", "1,2,3.4.5"])
def test_unreadable_amounts_are_refused(text: str) -> None:
    with pytest.raises(AmountError):
        parse_rupees(text)


def test_gas_volume_prints_in_scm() -> None:
    assert format_scm(1500) == "1.500 SCM"
    assert format_scm(7) == "0.007 SCM"


def test_uuid7_is_time_ordered_and_versioned() -> None:
    ids = [uuid7() for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 2000
    assert all(i.version == 7 for i in ids)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    assert abs(uuid7_time_ms(ids[0]) - now_ms) < 5000


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        ensure_aware(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


def test_display_time_is_india() -> None:
    assert format_india(datetime(2026, 1, 1, 0, 0, tzinfo=UTC)) == "01 Jan 2026, 05:30 IST"
