"""Receipts: the PDF in English and Hindi, the 58 mm thermal layout, and the verification page behind
the QR code that tells a genuine receipt from a forged one."""

from __future__ import annotations

import io
import re

from fastapi.testclient import TestClient
from pypdf import PdfReader

from citygas.payments.csc.service import do_csc_vend
from citygas.platform.uow import Database
from citygas.receipts.pdf import hindi_pdf_available, receipt_pdf
from citygas.receipts.rules import (
    THERMAL_WIDTH,
    escpos_bytes,
    receipt_check,
    receipt_key,
    tenant_code_of,
    thermal_lines,
)
from citygas.receipts.service import build_receipt
from citygas.sts import group_token
from citygas.vending.models import Vend
from tests.conftest import make_user
from tests.meters.test_registry import MASTER
from tests.receipts.csc_world import PASSWORD, Csc, csc, csc_client, fund

__all__ = ["csc", "csc_client"]  # fixtures, imported for pytest

BASE = "http://testserver"


def _vend(db: Database, c: Csc) -> Vend:
    fund(db, c, 1_000_00)
    with db.unit_of_work(tenant=c.tenant.id) as uow:
        made = do_csc_vend(
            uow.session, c.agent(uow.session), "ALP-C-00000001", 500_00, "receipt-form-1", master_key=MASTER
        ).vend
        uow.commit()
    return made


def _receipt(db: Database, c: Csc, made: Vend) -> object:
    with db.unit_of_work(tenant=c.tenant.id, read_only=True) as uow:
        return build_receipt(uow.session, made, master_key=MASTER, base_url=BASE)


def test_the_english_pdf_carries_everything_a_receipt_shows(db: Database, csc: Csc) -> None:
    made = _vend(db, csc)
    receipt = _receipt(db, csc, made)
    body = receipt_pdf(receipt, lang="en")  # type: ignore[arg-type]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)
    flat = re.sub(r"\s+", " ", text)
    assert body.startswith(b"%PDF-")
    for expected in (
        made.receipt_number,
        "Alpha Gas",
        "Asha Rao",
        "ALP-C-00000001",
        "SN0001",
        "₹500.00",
        "CSC-0042",
        "Rampur",
        "04-12-2026 12:00 IST",
        "Gas credit",
    ):
        assert expected in flat, expected
    for token in made.tokens:
        assert group_token(token["token"]) in flat
        assert f"TID {token['tid']}" in flat


def test_the_hindi_pdf_is_shaped_in_an_embedded_devanagari_font(db: Database, csc: Csc) -> None:
    made = _vend(db, csc)
    assert hindi_pdf_available()  # fontpkg-noto-sans-devanagari and uharfbuzz are dependencies
    body = receipt_pdf(_receipt(db, csc, made), lang="hi")  # type: ignore[arg-type]
    reader = PdfReader(io.BytesIO(body))
    fonts = {
        str(font["/BaseFont"])
        for page in reader.pages
        for font in page["/Resources"]["/Font"].get_object().values()  # type: ignore[index]
    }
    text = reader.pages[0].extract_text()
    assert any("NotoSansDevanagari" in name for name in fonts), fonts
    assert made.receipt_number in text
    assert "रसीद" in text  # the title's word survives shaping and extraction


def test_the_thermal_layout_fits_32_characters_a_line(db: Database, csc: Csc) -> None:
    made = _vend(db, csc)
    receipt = _receipt(db, csc, made)
    lines = thermal_lines(receipt)  # type: ignore[arg-type]
    assert max(len(line) for line in lines) <= THERMAL_WIDTH == 32
    assert all(line.isascii() for line in lines)
    assert "Amount paid            Rs.500.00" in lines
    for token in made.tokens:
        assert group_token(token["token"]).center(32).rstrip() in lines
    printed = escpos_bytes(receipt)  # type: ignore[arg-type]
    assert printed.startswith(b"\x1b@")
    assert printed.endswith(b"\x1dVB\x00")
    assert receipt.verify_url.encode() in printed  # type: ignore[attr-defined]


def test_the_check_is_bound_to_the_tenant_and_the_number() -> None:
    import uuid

    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    check = receipt_check(receipt_key(MASTER, a), "ALP-R-00000001")
    assert len(check) == 16
    assert check != receipt_check(receipt_key(MASTER, b), "ALP-R-00000001")
    assert check != receipt_check(receipt_key(MASTER, a), "ALP-R-00000002")
    assert (tenant_code_of("ALP-R-00000001"), tenant_code_of("nonsense")) == ("ALP", None)


def test_the_verification_page_confirms_a_genuine_receipt_and_refuses_a_forged_one(
    db: Database, csc: Csc, csc_client: TestClient
) -> None:
    made = _vend(db, csc)
    receipt = _receipt(db, csc, made)
    url = receipt.verify_url.removeprefix(BASE)  # type: ignore[attr-defined]
    genuine = csc_client.get(url)
    assert genuine.status_code == 200
    assert "Genuine receipt" in genuine.text
    assert made.receipt_number in genuine.text
    assert "₹500.00" in genuine.text
    for token in made.tokens:
        assert token["token"] not in genuine.text  # only the last four digits
        assert "…" + token["token"][-4:] in genuine.text
    forged_check = url[:-1] + ("a" if url[-1] != "a" else "b")
    for forged in (forged_check, f"/r/{made.receipt_number}", "/r/ZZZ-R-00000001?c=aaaaaaaaaaaaaaaa"):
        refused = csc_client.get(forged)
        assert refused.status_code == 404
        assert "not verified" in refused.text
        assert "Asha Rao" not in refused.text


def test_the_agent_prints_their_own_receipts_and_not_another_agents(
    db: Database, csc: Csc, csc_client: TestClient
) -> None:
    made = _vend(db, csc)
    from citygas.payments.csc.service import do_create_agent
    from citygas.tariffs.rules import flat_commission

    make_user(db, csc.tenant, "alpha.vle2", ["csc_agent"], PASSWORD)
    with db.unit_of_work(tenant=csc.tenant.id) as uow:
        do_create_agent(
            uow.session, username="alpha.vle2", csc_id="CSC-0043", village="Sonpur", rule=flat_commission(500)
        )
        uow.commit()
    from tests.conftest import login

    login(csc_client, "alpha.vle", PASSWORD)
    pdf = csc_client.get(f"/receipts/{made.receipt_number}.pdf")
    hindi = csc_client.get(f"/receipts/{made.receipt_number}.pdf", params={"lang": "hi"})
    roll = csc_client.get(f"/receipts/{made.receipt_number}/print")
    text = csc_client.get(f"/receipts/{made.receipt_number}/thermal.txt")
    assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
    assert (hindi.status_code, hindi.content[:5]) == (200, b"%PDF-")
    assert roll.status_code == 200
    assert "58mm" in roll.text
    assert "data:image/svg+xml" in roll.text
    assert all(len(line) <= 32 for line in text.text.splitlines())
    csc_client.cookies.clear()
    login(csc_client, "alpha.vle2", PASSWORD)
    assert csc_client.get(f"/receipts/{made.receipt_number}.pdf").status_code == 404
