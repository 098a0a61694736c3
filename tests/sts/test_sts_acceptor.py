"""The meter-side rules, each rejection path on its own, and the state round trip."""

from __future__ import annotations

import dataclasses

import pytest

from citygas.sts import (
    AcceptOutcome,
    CreditToken,
    DecoderKey,
    DecoderState,
    EncryptionAlgorithm,
    KeyType,
    ManagementToken,
    MeterConfig,
    MeterTokenAcceptor,
    NewKeyAttributes,
    SoftwareKeyVault,
    build_key_change_set_from_vault,
    build_rollover_key_change_set,
    encode_token,
    issue_clear_credit,
    issue_credit_token,
    issue_meter_test_token,
)
from citygas.sts.keychange import key_change_sections

from .conftest import CONFORMANCE_DECODER_KEY_HEX, CONFORMANCE_PARAMS

TID = 5_900_000


def meter(kt: int = KeyType.DUTK, ken: int = 255, **config: object) -> MeterTokenAcceptor:
    state = DecoderState(
        decoder_key=bytes.fromhex(CONFORMANCE_DECODER_KEY_HEX),
        ea=EncryptionAlgorithm.MISTY1,
        kt=kt,
        krn=1,
        ti=1,
        sgc=123457,
        ken=ken,
        base_date=1993,
    )
    return MeterTokenAcceptor(state, dataclasses.replace(MeterConfig(), **config))  # type: ignore[arg-type]


def gas_credit(key: DecoderKey, amount: int = 100, tid: int = TID) -> str:
    return issue_credit_token(decoder_key=key, subclass=2, amount=amount, tid=tid, ken=255, rnd=0).token


def test_a_gas_credit_token_adds_credit(decoder_key: DecoderKey) -> None:
    acceptor = meter()
    result = acceptor.accept(gas_credit(decoder_key, amount=20000), now=0.0)
    assert result.outcome is AcceptOutcome.CREDIT_ADDED
    assert result.credit_added == 20004
    assert acceptor.state.credit == {2: 20004}
    assert acceptor.state.tids == [TID]


def test_format_error_for_a_short_token() -> None:
    acceptor = meter()
    assert acceptor.accept("1234", now=0.0).outcome is AcceptOutcome.FORMAT_ERROR
    assert acceptor.state.credit == {}


def test_crc_error_for_a_token_of_another_meter() -> None:
    acceptor = meter()
    other = DecoderKey.from_hex("290e2626f5a0d106aad1aab6411589df")
    assert acceptor.accept(gas_credit(other), now=0.0).outcome is AcceptOutcome.CRC_ERROR
    assert acceptor.state.credit == {}


def test_class_error_for_a_subclass_the_meter_does_not_take(decoder_key: DecoderKey) -> None:
    acceptor = meter()
    electricity = issue_credit_token(decoder_key=decoder_key, subclass=0, amount=1, tid=TID, ken=255).token
    assert acceptor.accept(electricity, now=0.0).outcome is AcceptOutcome.CLASS_ERROR
    assert acceptor.state.credit == {}


def test_class_error_for_a_reserved_class(decoder_key: DecoderKey) -> None:
    number = int(gas_credit(decoder_key)) | (0b11 << 27)
    assert meter().accept(f"{number:020d}", now=0.0).outcome is AcceptOutcome.CLASS_ERROR


def test_credit_is_refused_under_a_default_key(decoder_key: DecoderKey) -> None:
    acceptor = meter(kt=KeyType.DDTK)
    assert acceptor.accept(gas_credit(decoder_key), now=0.0).outcome is AcceptOutcome.KEY_TYPE_ERROR
    assert acceptor.state.tids == []


def test_management_is_refused_under_an_initialisation_key(decoder_key: DecoderKey) -> None:
    token = issue_clear_credit(decoder_key=decoder_key, tid=TID, ken=255).token
    assert meter(kt=KeyType.DITK).accept(token, now=0.0).outcome is AcceptOutcome.KEY_TYPE_ERROR


def test_key_expired_when_tid_is_past_ken_times_65535(decoder_key: DecoderKey) -> None:
    # Given a meter whose key has KEN 1 (TIDs up to 65535), and a token minted without the vending-side check
    token = encode_token(CreditToken(subclass=2, rnd=0, tid=65_536, amount_field=1), decoder_key)
    acceptor = meter(ken=1)
    assert acceptor.accept(token, now=0.0).outcome is AcceptOutcome.KEY_EXPIRED_ERROR
    assert acceptor.state.credit == {}


def test_used_error_when_the_same_token_is_entered_twice(decoder_key: DecoderKey) -> None:
    acceptor = meter()
    token = gas_credit(decoder_key)
    acceptor.accept(token, now=0.0)
    result = acceptor.accept(token, now=1.0)
    assert result.outcome is AcceptOutcome.USED_ERROR
    assert acceptor.state.credit == {2: 100}


def test_old_error_when_the_tid_is_older_than_the_remembered_window(decoder_key: DecoderKey) -> None:
    # Given a meter that remembers 3 TIDs and has seen TIDs 10, 20 and 30
    acceptor = meter(tid_memory_size=3)
    for tid in (10, 20, 30):
        assert acceptor.accept(gas_credit(decoder_key, tid=tid), now=0.0).accepted
    # When a token with TID 5 arrives, then it is OldError; TID 25 is still fresh
    assert acceptor.accept(gas_credit(decoder_key, tid=5), now=0.0).outcome is AcceptOutcome.OLD_ERROR
    assert acceptor.accept(gas_credit(decoder_key, tid=25), now=0.0).outcome is AcceptOutcome.CREDIT_ADDED
    assert acceptor.state.tids == [20, 25, 30]


def test_overflow_error_when_credit_would_pass_the_register_limit(decoder_key: DecoderKey) -> None:
    acceptor = meter(credit_register_limit=150)
    assert acceptor.accept(gas_credit(decoder_key, tid=1), now=0.0).accepted
    result = acceptor.accept(gas_credit(decoder_key, tid=2), now=0.0)
    assert result.outcome is AcceptOutcome.OVERFLOW_ERROR
    assert acceptor.state.credit == {2: 100}
    assert acceptor.state.tids == [1]


def test_range_error_for_clearing_an_unknown_register(decoder_key: DecoderKey) -> None:
    token = issue_clear_credit(decoder_key=decoder_key, tid=TID, ken=255, register=0x0042).token
    assert meter().accept(token, now=0.0).outcome is AcceptOutcome.RANGE_ERROR


def test_clear_credit_all_registers_empties_the_credit(decoder_key: DecoderKey) -> None:
    acceptor = meter()
    acceptor.accept(gas_credit(decoder_key, tid=1), now=0.0)
    result = acceptor.accept(issue_clear_credit(decoder_key=decoder_key, tid=2, ken=255).token, now=0.0)
    assert result.outcome is AcceptOutcome.MANAGEMENT_APPLIED
    assert acceptor.state.credit == {}


def test_management_tokens_set_limits_and_clear_tamper(decoder_key: DecoderKey) -> None:
    acceptor = meter()
    acceptor.state.tamper_latched = True
    for tid, (subclass, value) in enumerate([(0, 1000), (6, 10), (2, 0x1234), (5, 0)], start=1):
        token = encode_token(ManagementToken(subclass, 0, tid, value), decoder_key)
        assert acceptor.accept(token, now=0.0).outcome is AcceptOutcome.MANAGEMENT_APPLIED
    state = acceptor.state
    assert (state.maximum_power_limit_w, state.phase_power_unbalance_limit_w) == (1000, 10)
    assert (state.tariff_rate_field, state.tamper_latched) == (0x1234, False)


def test_test_tokens_for_another_manufacturer_are_refused() -> None:
    acceptor = meter(manufacturer_code=0x21)
    ours = issue_meter_test_token(control=1, mfr_code=0x21).token
    theirs = issue_meter_test_token(control=1, mfr_code=0x22).token
    assert acceptor.accept(ours, now=0.0).outcome is AcceptOutcome.TEST_STARTED
    assert acceptor.accept(theirs, now=0.0).outcome is AcceptOutcome.MANUFACTURER_ERROR


def test_keypad_locks_after_repeated_bad_tokens_for_longer_each_time(decoder_key: DecoderKey) -> None:
    acceptor = meter(lockout_threshold=3, lockout_base_seconds=60)
    bad = "12345678901234567890"
    # When three bad tokens are entered, then the third locks the keypad for 60 s
    assert acceptor.accept(bad, now=0.0).locked_for_seconds is None
    assert acceptor.accept(bad, now=1.0).locked_for_seconds is None
    assert acceptor.accept(bad, now=2.0).locked_for_seconds == 60
    # And even a good token is refused while locked
    locked = acceptor.accept(gas_credit(decoder_key), now=30.0)
    assert locked.outcome is AcceptOutcome.LOCKED_OUT
    assert locked.locked_for_seconds == 32.0
    # When three more bad tokens follow, the next lockout is twice as long
    for now in (62.0, 63.0):
        acceptor.accept(bad, now=now)
    assert acceptor.accept(bad, now=64.0).locked_for_seconds == 120
    # And a good token after the lockout resets the back-off
    assert acceptor.accept(gas_credit(decoder_key), now=200.0).accepted
    assert (acceptor.state.consecutive_bad_tokens, acceptor.state.lockouts_since_good_token) == (0, 0)


def test_key_change_waits_for_every_section_then_switches_key(vault: SoftwareKeyVault) -> None:
    # Given the published CTSA05 change (TI 01 -> 02) built from the vault
    new_params = dataclasses.replace(CONFORMANCE_PARAMS, ti=2)
    change = build_key_change_set_from_vault(
        vault=vault, key_id="cgd-1/vk-1", current=CONFORMANCE_PARAMS, new=new_params, ken=255
    )
    assert change.tokens[0] == "34812744915211133004"
    acceptor = meter()
    # When sections arrive out of order, the key does not change until the last one
    for token in (change.tokens[2], change.tokens[0], change.tokens[3]):
        assert acceptor.accept(token, now=0.0).outcome is AcceptOutcome.KEY_CHANGE_SECTION_STORED
        assert acceptor.state.decoder_key.hex() == CONFORMANCE_DECODER_KEY_HEX
    result = acceptor.accept(change.tokens[1], now=0.0)
    # Then the meter has the new key and TI, and takes tokens under it
    assert result.outcome is AcceptOutcome.KEY_CHANGED
    new_key = vault.derive_decoder_key("cgd-1/vk-1", new_params)
    assert acceptor.state.decoder_key == new_key.material()
    assert acceptor.state.ti == 2
    assert acceptor.accept(gas_credit(new_key), now=0.0).outcome is AcceptOutcome.CREDIT_ADDED


def test_rollover_moves_the_meter_to_2014_and_clears_its_tid_memory(vault: SoftwareKeyVault) -> None:
    acceptor = meter()
    old_key = DecoderKey.from_hex(CONFORMANCE_DECODER_KEY_HEX)
    assert acceptor.accept(gas_credit(old_key, tid=16_000_000), now=0.0).accepted
    change = build_rollover_key_change_set(
        vault=vault, key_id="cgd-1/vk-1", current=CONFORMANCE_PARAMS, new_krn=4, new_ti=2
    )
    # The first section is the published CTSA05_04-2 token
    assert change.tokens[0] == "56493341861242437581"
    for token in change.tokens:
        result = acceptor.accept(token, now=0.0)
    assert result.outcome is AcceptOutcome.KEY_CHANGED
    assert (acceptor.state.base_date, acceptor.state.krn, acceptor.state.tids) == (2014, 4, [])
    # Then a token with a 2014-based TID (much smaller than the old ones) is accepted
    new_key = vault.derive_decoder_key("cgd-1/vk-1", change.new_parameters)  # type: ignore[arg-type]
    assert acceptor.accept(gas_credit(new_key, tid=5_700_000), now=0.0).accepted


def test_key_change_to_an_initialisation_key_is_a_range_error(decoder_key: DecoderKey) -> None:
    attributes = NewKeyAttributes(ken=255, krn=2, kt=KeyType.DITK, ti=1, sgc=123457, rollover=False)
    acceptor = meter()
    for section in key_change_sections(bytes(16), attributes):
        result = acceptor.accept(encode_token(section, decoder_key), now=0.0)
    assert result.outcome is AcceptOutcome.RANGE_ERROR
    assert acceptor.state.decoder_key.hex() == CONFORMANCE_DECODER_KEY_HEX


def test_decoder_state_survives_a_dict_round_trip(decoder_key: DecoderKey, vault: SoftwareKeyVault) -> None:
    acceptor = meter()
    acceptor.accept(gas_credit(decoder_key, tid=1), now=0.0)
    change = build_rollover_key_change_set(
        vault=vault, key_id="cgd-1/vk-1", current=CONFORMANCE_PARAMS, new_krn=4
    )
    acceptor.accept(change.tokens[0], now=0.0)
    acceptor.accept("00000000000000000000", now=0.0)
    restored = DecoderState.from_dict(acceptor.state.to_dict())
    assert restored.to_dict() == acceptor.state.to_dict()
    assert restored.pending_sections == acceptor.state.pending_sections


def test_decoder_state_repr_hides_the_key() -> None:
    text = repr(meter().state)
    assert CONFORMANCE_DECODER_KEY_HEX not in text
    assert "<key hidden>" in text


def test_decoder_state_refuses_an_unknown_version() -> None:
    data = meter().state.to_dict()
    data["version"] = 99
    with pytest.raises(ValueError, match="version 99"):
        DecoderState.from_dict(data)
