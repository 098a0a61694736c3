"""The conformance runner over the published development vectors and malformed lines."""

from __future__ import annotations

import io
import json
import pathlib

from citygas.sts import run_conformance

DEV_VECTORS = pathlib.Path(__file__).resolve().parent / "vectors" / "vectors-dev.jsonl"
FIRST_LINE = (
    '{"id": "CTSA01_04-1", "source": "STS 531-1-0-04 CTSA01 step 1", "kind": "credit", '
    '"vending_key": "abababababababab949494949494949401234567", "dkga": "04", "ea": "11", "sgc": "123457", '
    '"ti": 1, "kt": 2, "krn": 1, "ken": 255, "base_date": 1993, "pan": "600727000000000009", '
    '"decoder_key": "f94b6ed353c3bfdb113e2d3a7ea3c41d", "token_class": 0, "subclass": 0, "rnd": 5, '
    '"issued": "2004-03-01T13:00", "tid": 5871660, "requested_tenths": 1, "amount_tenths": 1, "value16": 1, '
    '"token": "59386323472137426967"}'
)


def run(path: pathlib.Path) -> tuple[tuple[int, int], list[str]]:
    out = io.StringIO()
    result = run_conformance(path, out)
    return result, out.getvalue().splitlines()


def test_every_development_vector_passes() -> None:
    (passed, failed), lines = run(DEV_VECTORS)
    assert (passed, failed) == (39, 0)
    assert lines[-1] == "39 passed, 0 failed"
    assert lines[0] == "PASS CTSA01_04-1 credit 59386323472137426967"


def test_unknown_keys_fail_only_their_line(tmp_path: pathlib.Path) -> None:
    extra = json.loads(FIRST_LINE) | {"id": "extra", "colour": "blue"}
    path = tmp_path / "v.jsonl"
    path.write_text(FIRST_LINE + "\n" + json.dumps(extra) + "\n")
    (passed, failed), lines = run(path)
    assert (passed, failed) == (1, 1)
    assert lines[1] == "FAIL extra unknown keys ['colour']"
    assert lines[2] == "1 passed, 1 failed"


def test_a_wrong_token_fails_with_the_token_the_engine_built(tmp_path: pathlib.Path) -> None:
    wrong = json.loads(FIRST_LINE) | {"token": "59386323472137426968"}
    path = tmp_path / "v.jsonl"
    path.write_text(json.dumps(wrong) + "\n")
    (_, failed), lines = run(path)
    assert failed == 1
    assert lines[0] == "FAIL CTSA01_04-1 encoding gives 59386323472137426967, not the token"


def test_invalid_json_missing_keys_and_duplicates_fail(tmp_path: pathlib.Path) -> None:
    missing = json.loads(FIRST_LINE)
    del missing["rnd"]
    missing["id"] = "no-rnd"
    path = tmp_path / "v.jsonl"
    path.write_text("{not json\n" + FIRST_LINE + "\n" + FIRST_LINE + "\n" + json.dumps(missing) + "\n")
    (passed, failed), lines = run(path)
    assert (passed, failed) == (1, 3)
    assert lines[0].startswith("FAIL line-1 ")
    assert lines[2] == "FAIL CTSA01_04-1 duplicate id"
    assert lines[3] == "FAIL no-rnd missing keys ['rnd']"


def test_a_tid_offset_line_checks_the_offset_not_the_issue_minute(tmp_path: pathlib.Path) -> None:
    shifted = json.loads(FIRST_LINE) | {"id": "offset", "issued": "2004-03-01T12:58", "tid_offset": 2}
    path = tmp_path / "v.jsonl"
    path.write_text(json.dumps(shifted) + "\n")
    assert run(path)[0] == (1, 0)
