"""Receipt routes: the PDF (English or Hindi), the 58 mm thermal layouts (text, ESC/POS, HTML print
view), and the public verification page behind the QR code."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.platform.settings import Settings
from citygas.receipts.pdf import hindi_pdf_available, qr_svg_data_uri, receipt_pdf
from citygas.receipts.rules import Receipt, escpos_bytes, labels_for, receipt_rows, thermal_lines
from citygas.receipts.service import access_receipt, build_receipt, verify_receipt
from citygas.web.deps import Requires, get_db, verify_csrf
from citygas.web.render import render

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)
public_router = APIRouter(include_in_schema=False)

P = Permission
CAN_PRINT = Requires(P.AGENT_VEND, P.VEND_VIEW, P.CUSTOMER_SELF)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _receipt(request: Request, principal: Principal, receipt_number: str) -> Receipt:
    settings = _settings(request)
    db = get_db(request)
    with db.unit_of_work(tenant=principal.tenant_id, actor=principal.actor, read_only=True) as uow:
        vend = access_receipt(uow.session, principal, receipt_number)
        return build_receipt(
            uow.session, vend, master_key=settings.master_key_bytes, base_url=settings.base_url
        )


def _lang(lang: str) -> str:
    return "hi" if lang == "hi" else "en"


@router.get("/receipts/{receipt_number}.pdf")
def receipt_pdf_download(
    request: Request,
    receipt_number: str,
    principal: Annotated[Principal, Depends(CAN_PRINT)],
    lang: str = "en",
) -> Response:
    language = _lang(lang)
    if language == "hi" and not hindi_pdf_available():
        # No Devanagari font or shaping engine on this server: the browser prints the Hindi receipt.
        return RedirectResponse(f"/receipts/{receipt_number}/print?lang=hi&size=a5", status_code=303)
    receipt = _receipt(request, principal, receipt_number)
    body = receipt_pdf(receipt, lang=language)
    filename = f"{receipt.receipt_number}-{language}.pdf"
    return Response(
        body, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{filename}"'}
    )


@router.get("/receipts/{receipt_number}/print", response_class=HTMLResponse)
def receipt_print_view(
    request: Request,
    receipt_number: str,
    principal: Annotated[Principal, Depends(CAN_PRINT)],
    lang: str = "en",
    size: str = "58mm",
) -> Response:
    """The browser's print view: a 58 mm roll (default) or an A5 sheet, in English or Hindi."""
    language = _lang(lang)
    receipt = _receipt(request, principal, receipt_number)
    labels = labels_for(language)
    return render(
        request,
        "receipts/print.html",
        receipt=receipt,
        labels=labels,
        rows=receipt_rows(receipt, labels),
        lang=language,
        size="a5" if size == "a5" else "58mm",
        qr_data_uri=qr_svg_data_uri(receipt.verify_url),
        title=f"{labels.receipt} {receipt.receipt_number}",
    )


@router.get("/receipts/{receipt_number}/thermal.txt")
def receipt_thermal_text(
    request: Request, receipt_number: str, principal: Annotated[Principal, Depends(CAN_PRINT)]
) -> Response:
    receipt = _receipt(request, principal, receipt_number)
    return PlainTextResponse("\n".join(thermal_lines(receipt)) + "\n")


@router.get("/receipts/{receipt_number}/escpos")
def receipt_escpos(
    request: Request, receipt_number: str, principal: Annotated[Principal, Depends(CAN_PRINT)]
) -> Response:
    """Raw ESC/POS for a Bluetooth or USB receipt printer (the agent's printing app sends it as is)."""
    receipt = _receipt(request, principal, receipt_number)
    return Response(
        escpos_bytes(receipt),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{receipt.receipt_number}.bin"'},
    )


@public_router.get("/r/{receipt_number}", response_class=HTMLResponse)
def verify_receipt_page(request: Request, receipt_number: str, c: str = "") -> Response:
    """Public: anyone holding a receipt scans its QR code and the CGD says whether it is genuine. The page
    shows no more than the receipt itself (and the tokens only by their last four digits)."""
    settings = _settings(request)
    receipt = verify_receipt(
        get_db(request),
        receipt_number,
        c[:64],
        master_key=settings.master_key_bytes,
        base_url=settings.base_url,
    )
    if receipt is None:
        return render(
            request,
            "receipts/verify.html",
            status_code=404,
            receipt=None,
            receipt_number=receipt_number[:40],
            title="Receipt not verified",
        )
    return render(
        request,
        "receipts/verify.html",
        receipt=receipt,
        receipt_number=receipt.receipt_number,
        rows=receipt_rows(receipt, labels_for("en")),
        title=f"Receipt {receipt.receipt_number}",
    )


ROUTERS = (router, public_router)
