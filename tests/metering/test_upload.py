"""Uploading signed readings: verified before anything is stored, idempotent, and the proof that a vend's
tokens reached the meter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from tests.metering.conftest import T0, Cgd, endpoint_of, frames_of, get_meter, live_meter, upload, vend
from tests.web.db_snapshot import differences, snapshot

from citygas.metering.models import (
    MeterEventRecord,
    MeterRegisterReading,
    MeterSignedFrame,
    MeterSnapshot,
    MeterStatusReading,
    MeterUpload,
    TokenConfirmation,
)
from citygas.metering.service import (
    ForgedReading,
    MalformedReading,
    NotAReading,
    TooManyFrames,
    latest_status,
    pending_tokens,
)
from citygas.meters.link import ReadIdentity, crc16_ccitt_false, encode_request
from citygas.platform.errors import ValidationFailed
from citygas.platform.uow import Database

METERING_TABLES = (
    MeterUpload,
    MeterSignedFrame,
    MeterStatusReading,
    MeterRegisterReading,
    MeterSnapshot,
    MeterEventRecord,
    TokenConfirmation,
)


def counts(db: Database, cgd: Cgd) -> dict[str, int]:
    with db.unit_of_work(tenant=cgd.tenant.id, read_only=True) as uow:
        return {
            m.__tablename__: uow.session.execute(select(func.count()).select_from(m)).scalar_one()
            for m in METERING_TABLES
        }


def with_crc(frame: bytearray) -> bytes:
    """The frame with its CRC recomputed: CRC is for noise, anyone can fix it; only the MAC protects."""
    body = bytes(frame[:-2])
    return body + crc16_ccitt_false(body).to_bytes(2, "big")


def cooked(db: Database, cgd: Cgd, serial: str, days: int = 20):  # type: ignore[no-untyped-def]
    """A meter with credit that a household has cooked on for `days` days."""
    runtime = live_meter(db, cgd, serial, at=T0 - timedelta(days=days))
    outcome = vend(
        db, cgd, cgd.households[0].consumer_number, 200_000, key="first", now=T0 - timedelta(days=days)
    )
    for token in outcome.vend.tokens:
        runtime.meter.enter_token(token["token"])
    runtime.meter.press_button()
    runtime.run_until(T0)
    return runtime


def test_a_sync_stores_status_registers_snapshots_and_events_as_signed(db: Database, alpha: Cgd) -> None:
    runtime = cooked(db, alpha, "ALPM0000001")
    frames = frames_of(alpha, runtime)

    result = upload(db, alpha, "ALPM0000001", frames)

    assert result.upload_id is not None
    assert (result.frames_received, result.frames_new, result.statuses_new, result.registers_new) == (
        len(frames),
        len(frames),
        1,
        1,
    )
    assert result.snapshots_new == len(runtime.meter.daily_snapshots()) + len(
        runtime.meter.monthly_snapshots()
    )
    assert result.events_new == len(runtime.meter.events(limit=500))
    meter = get_meter(db, alpha, "ALPM0000001")
    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        status = latest_status(uow.session, meter)
        stored = (
            uow.session.execute(select(MeterSignedFrame.frame).order_by(MeterSignedFrame.meter_at))
            .scalars()
            .all()
        )
        upload_row = uow.session.execute(select(MeterUpload)).scalar_one()
    assert status is not None
    assert (status.credit, status.valve, status.meter_at) == (runtime.meter.credit, "open", T0)
    assert sorted(stored) == sorted(frames)  # the exact bytes: anyone can verify them again
    assert (upload_row.source, upload_row.uploaded_by, upload_row.frames_new) == (
        "customer",
        "test",
        len(frames),
    )


def test_a_replayed_upload_changes_nothing(db: Database, alpha: Cgd) -> None:
    frames = frames_of(alpha, cooked(db, alpha, "ALPM0000001"))
    upload(db, alpha, "ALPM0000001", frames)
    before = snapshot(db)

    again = upload(db, alpha, "ALPM0000001", frames)
    doubled = upload(db, alpha, "ALPM0000001", frames + frames)

    assert (again.upload_id, again.frames_new, again.events_new) == (None, 0, 0)
    assert doubled.upload_id is None
    assert differences(before, snapshot(db)) == {}


def test_a_later_sync_adds_only_what_is_new(db: Database, alpha: Cgd) -> None:
    runtime = cooked(db, alpha, "ALPM0000001")
    upload(db, alpha, "ALPM0000001", frames_of(alpha, runtime))
    first = counts(db, alpha)
    runtime.run_until(T0 + timedelta(days=2))

    result = upload(db, alpha, "ALPM0000001", frames_of(alpha, runtime), now=T0 + timedelta(days=2))

    after = counts(db, alpha)
    assert result.snapshots_new == 2  # two more day ends; the older snapshots were already there
    assert after["meter_snapshot"] == first["meter_snapshot"] + 2
    assert after["meter_event"] == first["meter_event"] + result.events_new
    assert after["meter_status_reading"] == first["meter_status_reading"] + 1


@pytest.mark.parametrize("where", ["mac", "credit"])
def test_a_forged_reading_is_refused_and_nothing_of_its_batch_is_stored(
    db: Database, alpha: Cgd, where: str
) -> None:
    runtime = cooked(db, alpha, "ALPM0000001")
    frames = frames_of(alpha, runtime)
    status = bytearray(frames[0])
    status[-3 if where == "mac" else 13] ^= 0x01  # a MAC bit, or a bit of the credit register
    before = snapshot(db)

    with pytest.raises(ForgedReading, match="not signed by meter ALPM0000001") as refused:
        upload(db, alpha, "ALPM0000001", [*frames[1:], with_crc(status)])

    assert refused.value.code == "reading_signature_invalid"
    assert refused.value.extra["frame"] == len(frames)
    assert differences(before, snapshot(db)) == {}


def test_an_altered_byte_without_a_fixed_crc_is_a_malformed_frame(db: Database, alpha: Cgd) -> None:
    frames = frames_of(alpha, cooked(db, alpha, "ALPM0000001"))
    altered = bytearray(frames[1])
    altered[10] ^= 0x40
    before = snapshot(db)

    with pytest.raises(MalformedReading) as refused:
        upload(db, alpha, "ALPM0000001", [frames[0], bytes(altered)])

    assert (refused.value.code, refused.value.extra["frame"]) == ("reading_malformed", 2)
    assert differences(before, snapshot(db)) == {}


def test_another_meters_reading_is_refused_for_this_meter(db: Database, alpha: Cgd, bravo: Cgd) -> None:
    own = frames_of(alpha, live_meter(db, alpha, "ALPM0000001"))
    neighbour = frames_of(alpha, live_meter(db, alpha, "ALPM0000002"))
    other_cgd = frames_of(bravo, live_meter(db, bravo, "BRVM0000001"))
    before = snapshot(db)

    for foreign in (neighbour[0], other_cgd[0]):
        with pytest.raises(ForgedReading):
            upload(db, alpha, "ALPM0000001", [own[0], foreign])

    assert differences(before, snapshot(db)) == {}


def test_frames_that_carry_no_reading_and_bad_batches_are_refused(db: Database, alpha: Cgd) -> None:
    runtime = live_meter(db, alpha, "ALPM0000001")
    identity = endpoint_of(alpha, runtime).handle(encode_request(ReadIdentity(), 1))  # unsigned
    status = frames_of(alpha, runtime)[0]
    before = snapshot(db)

    with pytest.raises(NotAReading):
        upload(db, alpha, "ALPM0000001", [status, identity])
    with pytest.raises(MalformedReading):
        upload(db, alpha, "ALPM0000001", [b"\x01\x82"])
    with pytest.raises(TooManyFrames):
        upload(db, alpha, "ALPM0000001", [status] * 65)
    with pytest.raises(ValidationFailed):
        upload(db, alpha, "ALPM0000001", [])
    with pytest.raises(ValidationFailed):
        upload(db, alpha, "ALPM0000001", [status], source="neighbour")

    assert differences(before, snapshot(db)) == {}


def test_signed_token_events_confirm_the_vend_and_its_tokens_stop_being_pending(
    db: Database, alpha: Cgd
) -> None:
    runtime = live_meter(db, alpha, "ALPM0000001")
    outcome = vend(db, alpha, alpha.households[0].consumer_number, 50_000, key="pay-1")
    meter = get_meter(db, alpha, "ALPM0000001")
    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        before = pending_tokens(uow.session, meter)
    assert [(p.kind, p.tid) for p in before] == [(t["kind"], t["tid"]) for t in outcome.vend.tokens]
    assert [p.kind for p in before] == ["set_tariff_rate", "credit"]  # the meter's rate first, then credit

    runtime.meter.enter_token(before[0].token)  # only the tariff token is typed
    first = upload(db, alpha, "ALPM0000001", frames_of(alpha, runtime))
    runtime.meter.enter_token(before[1].token)
    runtime.meter.enter_token(before[1].token)  # and the credit twice: the second is "used"
    second = upload(db, alpha, "ALPM0000001", frames_of(alpha, runtime))

    assert [(p.kind, p.tid) for p in first.confirmed] == [("set_tariff_rate", before[0].tid)]
    assert [(p.kind, p.tid) for p in second.confirmed] == [("credit", before[1].tid)]
    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        assert pending_tokens(uow.session, meter) == []
        rows = (
            uow.session.execute(select(TokenConfirmation).order_by(TokenConfirmation.event_seq))
            .scalars()
            .all()
        )
    assert [(r.tid, r.vend_id, r.evidence) for r in rows] == [
        (before[0].tid, outcome.vend.id, "management_applied"),
        (before[1].tid, outcome.vend.id, "credit_added"),
    ]


def test_a_used_error_proves_a_token_the_meter_took_while_its_acceptance_went_unseen(
    db: Database, alpha: Cgd
) -> None:
    runtime = live_meter(db, alpha, "ALPM0000001")
    outcome = vend(db, alpha, alpha.households[0].consumer_number, 50_000, key="pay-1")
    for token in outcome.vend.tokens:
        runtime.meter.enter_token(token["token"])
    last_seq = runtime.meter.events(limit=500)[-1].seq
    for token in outcome.vend.tokens:  # typed again: the meter refuses both as used
        runtime.meter.enter_token(token["token"])

    result = upload(db, alpha, "ALPM0000001", frames_of(alpha, runtime, after_seq=last_seq))

    assert {p.tid for p in result.confirmed} == {t["tid"] for t in outcome.vend.tokens}
    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        evidence = set(uow.session.execute(select(TokenConfirmation.evidence)).scalars())
    assert evidence == {"used_error"}


def test_an_unsigned_claim_cannot_confirm_a_token(db: Database, alpha: Cgd) -> None:
    """Only the meter's own signed events confirm: a status (even a genuine one) confirms nothing."""
    runtime = live_meter(db, alpha, "ALPM0000001")
    vend(db, alpha, alpha.households[0].consumer_number, 50_000, key="pay-1")

    result = upload(db, alpha, "ALPM0000001", frames_of(alpha, runtime)[:2])

    assert result.confirmed == []
    assert counts(db, alpha)["meter_token_confirmation"] == 0
