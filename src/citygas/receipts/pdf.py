"""The PDF receipt (A6, English or Hindi) with the verification QR code, drawn with fpdf2.

Fonts come from packages, never from the repository: Noto Sans Devanagari (it has Latin and ₹ too) from
the `fontpkg-noto-sans-devanagari` PyPI package, else Debian's `fonts-noto-core` or `fonts-lohit-deva`.
Devanagari needs real shaping (conjuncts, matras), which fpdf2 does through HarfBuzz (`uharfbuzz`).
Without a font, the English PDF falls back to a core font ("Rs." for ₹); without a font or HarfBuzz,
`hindi_pdf_available()` is False and the Hindi receipt is offered as the HTML print view instead.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import segno
from fpdf import FPDF

from citygas.receipts.rules import Receipt, labels_for, receipt_rows

DEBIAN_FONTS = (
    Path("/usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf"),
    Path("/usr/share/fonts/truetype/lohit-devanagari/Lohit-Devanagari.ttf"),
)
FAMILY = "receipt"


@lru_cache(maxsize=1)
def devanagari_font() -> Path | None:
    spec = importlib.util.find_spec("fontpkg_noto_sans_devanagari")
    if spec is not None and spec.origin:
        found = sorted(Path(spec.origin).parent.joinpath("files").glob("NotoSansDevanagari*.ttf"))
        if found:
            return found[0]
    return next((path for path in DEBIAN_FONTS if path.exists()), None)


def shaping_available() -> bool:
    return importlib.util.find_spec("uharfbuzz") is not None


def hindi_pdf_available() -> bool:
    return devanagari_font() is not None and shaping_available()


def _setup(pdf: FPDF, lang: str) -> tuple[str, str]:
    """Fonts for the page; returns (family, rupee sign)."""
    font = devanagari_font()
    if font is None:
        if lang == "hi":
            raise RuntimeError("no Devanagari font is installed; offer the HTML print view")
        return "helvetica", "Rs."
    variable = "[" in font.name  # a variable font: pick the regular and bold instances
    if variable:
        pdf.add_font(FAMILY, "", str(font), variations={"wght": 400.0})
        pdf.add_font(FAMILY, "B", str(font), variations={"wght": 700.0})
    else:
        pdf.add_font(FAMILY, "", str(font))
        pdf.add_font(FAMILY, "B", str(font))
    if shaping_available():
        pdf.set_text_shaping(
            use_shaping_engine=True,
            script="deva" if lang == "hi" else None,
            language="hin" if lang == "hi" else None,
        )
    elif lang == "hi":
        raise RuntimeError("Devanagari needs text shaping (uharfbuzz); offer the HTML print view")
    return FAMILY, "₹"


def _draw_qr(pdf: FPDF, data: str, x: float, y: float, size: float) -> None:
    code = segno.make(data, error="m")
    rows = [list(row) for row in code.matrix_iter(scale=1, border=2)]
    module = size / len(rows)
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(rows):
        c = 0
        while c < len(row):  # one rectangle per run of dark modules keeps the file small
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                pdf.rect(x + start * module, y + r * module, (c - start) * module, module, style="F")
            else:
                c += 1


def receipt_pdf(receipt: Receipt, *, lang: str = "en") -> bytes:
    labels = labels_for(lang)
    pdf = FPDF(orientation="P", unit="mm", format=(148, 210))  # A5
    pdf.set_auto_page_break(auto=True, margin=10)
    pdf.set_margins(12, 10, 12)
    pdf.set_title(f"{labels.receipt} {receipt.receipt_number}")
    pdf.set_author(receipt.cgd_name)
    pdf.set_creator("citygas")
    pdf.set_lang("hi-IN" if lang == "hi" else "en-IN")
    family, rupee = _setup(pdf, lang)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    pdf.set_font(family, "B", 14)
    pdf.cell(width, 7, receipt.cgd_name, new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font(family, "", 11)
    pdf.cell(width, 6, labels.receipt, new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.ln(2)

    label_w = width * 0.45
    for label, value in receipt_rows(receipt, labels, rupee=rupee):
        strong = label in (labels.amount, labels.gas_credit)
        pdf.set_font(family, "", 9.5)
        pdf.cell(label_w, 5.5, label)
        pdf.set_font(family, "B" if strong else "", 9.5)
        pdf.multi_cell(width - label_w, 5.5, value, new_x="LMARGIN", new_y="NEXT", align="R")
    pdf.ln(2)

    pdf.set_font(family, "B", 11)
    pdf.cell(width, 6, labels.tokens, new_x="LMARGIN", new_y="NEXT")
    for n, token in enumerate(receipt.tokens, start=1):
        kind = labels.token_kinds.get(token.kind, token.kind)
        pdf.set_font(family, "", 9)
        pdf.cell(width, 5, f"{n}. {kind} · {labels.tid} {token.tid}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, "B", 15)
        pdf.cell(width, 8, token.grouped, new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font(family, "", 9)
    pdf.multi_cell(width, 5, labels.instructions, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    qr_size = 30.0
    top = pdf.get_y()
    if top + qr_size > pdf.h - 12:
        pdf.add_page()
        top = pdf.get_y()
    _draw_qr(pdf, receipt.verify_url, pdf.l_margin, top, qr_size)
    pdf.set_xy(pdf.l_margin + qr_size + 4, top + 2)
    text_w = width - qr_size - 4
    pdf.set_font(family, "", 8.5)
    pdf.multi_cell(text_w, 4.5, labels.scan, new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(pdf.l_margin + qr_size + 4)
    pdf.multi_cell(
        text_w, 4.5, f"{labels.helpline}: {receipt.helpline or '-'}", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_x(pdf.l_margin + qr_size + 4)
    pdf.multi_cell(
        text_w, 4.5, f"{labels.emergency}: {receipt.emergency_number or '-'}", new_x="LMARGIN", new_y="NEXT"
    )
    return bytes(pdf.output())


def qr_svg_data_uri(data: str) -> str:
    """The verification QR code as an SVG data URI, for the HTML print views."""
    return str(segno.make(data, error="m").svg_data_uri(scale=4, border=2))
