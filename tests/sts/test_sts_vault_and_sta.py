"""Key custody and the licensed-table EA07 path."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import random
import stat

import pytest

from citygas.sts import (
    DecoderKey,
    EncryptionAlgorithm,
    KeyVaultError,
    SoftwareKeyVault,
    StaTablesError,
    UnknownVendingKeyError,
    UnsupportedAlgorithmError,
    load_sta_tables,
)
from citygas.sts.keys import KeyGenerationAlgorithm
from citygas.sts.sta import STA_TABLE_FORMAT, Sta, StaTables

from .conftest import CONFORMANCE_DECODER_KEY_HEX, CONFORMANCE_PARAMS, CONFORMANCE_VENDING_KEY, MASTER_KEY


def test_vault_derives_the_published_decoder_key(vault: SoftwareKeyVault) -> None:
    key = vault.derive_decoder_key("cgd-1/vk-1", CONFORMANCE_PARAMS)
    assert key.material().hex() == CONFORMANCE_DECODER_KEY_HEX


def test_vault_blob_holds_no_plaintext_key(vault: SoftwareKeyVault) -> None:
    blob = json.dumps(vault.export_blob())
    assert CONFORMANCE_VENDING_KEY.hex() not in blob
    assert "abababab" not in blob
    assert repr(vault) == "SoftwareKeyVault(1 vending keys, <encrypted>)"


def test_vault_reopens_from_its_file_with_the_master_key(
    vault: SoftwareKeyVault, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "vault.json"
    vault.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    reopened = SoftwareKeyVault.open(path, MASTER_KEY)
    assert reopened.list_key_ids() == ["cgd-1/vk-1"]
    assert reopened.derive_decoder_key("cgd-1/vk-1", CONFORMANCE_PARAMS).material().hex() == (
        CONFORMANCE_DECODER_KEY_HEX
    )


def test_vault_with_the_wrong_master_key_fails_at_open(vault: SoftwareKeyVault) -> None:
    with pytest.raises(KeyVaultError, match="wrong master key or a tampered vault"):
        SoftwareKeyVault(bytes(32), vault.export_blob())


def test_vault_detects_swapped_entries(vault: SoftwareKeyVault) -> None:
    vault.store_vending_key("cgd-1/vk-2", bytes(20), KeyGenerationAlgorithm.DKGA04)
    blob = vault.export_blob()
    keys = blob["keys"]
    assert isinstance(keys, dict)
    keys["cgd-1/vk-1"], keys["cgd-1/vk-2"] = keys["cgd-1/vk-2"], keys["cgd-1/vk-1"]
    with pytest.raises(KeyVaultError, match="tampered"):
        SoftwareKeyVault(MASTER_KEY, blob)


def test_vault_never_overwrites_a_key(vault: SoftwareKeyVault) -> None:
    with pytest.raises(KeyVaultError, match="never overwritten"):
        vault.store_vending_key("cgd-1/vk-1", bytes(20), KeyGenerationAlgorithm.DKGA04)


def test_vault_refuses_unknown_ids_and_wrong_key_lengths(vault: SoftwareKeyVault) -> None:
    with pytest.raises(UnknownVendingKeyError):
        vault.derive_decoder_key("nope", CONFORMANCE_PARAMS)
    with pytest.raises(KeyVaultError, match="20 bytes"):
        vault.store_vending_key("short", bytes(8), KeyGenerationAlgorithm.DKGA04)
    with pytest.raises(KeyVaultError, match="32 bytes"):
        SoftwareKeyVault(bytes(16))


def test_vault_cannot_be_pickled(vault: SoftwareKeyVault) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(vault)


def synthetic_tables(seed: int) -> StaTables:
    """Made-up tables with the STA's shape: NOT the licensed tables, only for testing the machinery."""
    rng = random.Random(seed)
    s1, s2, perm = list(range(16)), list(range(16)), list(range(64))
    rng.shuffle(s1)
    rng.shuffle(s2)
    rng.shuffle(perm)
    return StaTables(tuple(s1), tuple(s2), tuple(perm))


def test_sta_decrypt_inverts_encrypt_for_any_valid_tables() -> None:
    rng = random.Random(7)
    for seed in range(5):
        cipher = Sta(rng.randbytes(8), synthetic_tables(seed))
        for _ in range(50):
            block = rng.getrandbits(64)
            assert cipher.decrypt_block(cipher.encrypt_block(block)) == block


def test_sta_table_file_loads_and_checks_its_vectors(tmp_path: pathlib.Path) -> None:
    tables = synthetic_tables(1)
    expected = Sta(bytes.fromhex("0abc12def3456789"), tables).encrypt_block(0x0123456789ABCDEF)
    content = {
        "format": STA_TABLE_FORMAT,
        "substitution_1": list(tables.substitution_1),
        "substitution_2": list(tables.substitution_2),
        "permutation": list(tables.permutation),
        "check_vectors": [
            {
                "decoder_key": "0abc12def3456789",
                "plaintext": "0123456789abcdef",
                "ciphertext": f"{expected:016x}",
            }
        ],
    }
    path = tmp_path / "sta.json"
    path.write_text(json.dumps(content))
    assert load_sta_tables(path) == tables
    assert "licensed tables hidden" in repr(tables)
    content["check_vectors"][0]["ciphertext"] = f"{expected ^ 1:016x}"  # type: ignore[index]
    path.write_text(json.dumps(content))
    with pytest.raises(StaTablesError, match="does not reproduce"):
        load_sta_tables(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"permutation": [*range(63), 0]}, "must be a permutation of 0..63"),
        ({"format": "other"}, "must declare format"),
        ({"extra": 1}, "unknown keys"),
    ],
)
def test_malformed_sta_table_files_are_refused(
    tmp_path: pathlib.Path, change: dict[str, object], message: str
) -> None:
    tables = synthetic_tables(2)
    content: dict[str, object] = {
        "format": STA_TABLE_FORMAT,
        "substitution_1": list(tables.substitution_1),
        "substitution_2": list(tables.substitution_2),
        "permutation": list(tables.permutation),
    }
    content.update(change)
    path = tmp_path / "sta.json"
    path.write_text(json.dumps(content))
    with pytest.raises(StaTablesError, match=message):
        load_sta_tables(path)


def test_missing_sta_table_file_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StaTablesError, match="does not exist"):
        load_sta_tables(tmp_path / "absent.json")


def test_ea07_key_without_tables_says_what_is_missing() -> None:
    with pytest.raises(UnsupportedAlgorithmError, match="licensed STA tables"):
        DecoderKey(bytes(8), EncryptionAlgorithm.STA).cipher()


LICENSED_TABLES = os.environ.get("CITYGAS_STA_TABLES")


@pytest.mark.skipif(
    not LICENSED_TABLES,
    reason="the licensed STA tables are not in this repository; "
    "set CITYGAS_STA_TABLES to a table file to run",
)
def test_licensed_sta_tables_reproduce_their_check_vectors() -> None:
    assert LICENSED_TABLES is not None
    raw = json.loads(pathlib.Path(LICENSED_TABLES).read_text(encoding="utf-8"))
    assert raw.get("check_vectors"), "a licensed table file should carry check vectors"
    tables = load_sta_tables(pathlib.Path(LICENSED_TABLES))
    for vector in raw["check_vectors"]:
        cipher = Sta(bytes.fromhex(vector["decoder_key"]), tables)
        assert cipher.decrypt_block(int(vector["ciphertext"], 16)) == int(vector["plaintext"], 16)
