"""Pure receipt rules: what a receipt says (`Receipt`), its labels in English and Hindi, the verification
check, and the 58 mm thermal layout (32 characters a line) as text and ESC/POS bytes. No database, no web.

The verification check is an HMAC-SHA256 of the receipt number under a key derived from the master key
for the receipt's tenant: only the CGD can make one, anyone can have the CGD's page confirm one, and a
receipt number typed by a forger without the check proves nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import textwrap
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from citygas.platform.money import format_inr, format_scm
from citygas.platform.time import to_india
from citygas.sts import group_token

THERMAL_WIDTH: Final = 32  # characters a line on a 58 mm printer with the standard 12×24 font
CHECK_BYTES: Final = 10  # 80 bits: 16 base32 characters in the QR's URL
_KEY_LABEL: Final = b"citygas/receipt-check/v1/"


def receipt_key(master_key: bytes, tenant_id: uuid.UUID) -> bytes:
    """The tenant's receipt-check key, derived from the master key (never the master key itself)."""
    return hmac.new(master_key, _KEY_LABEL + tenant_id.bytes, hashlib.sha256).digest()


def receipt_check(key: bytes, receipt_number: str) -> str:
    digest = hmac.new(key, receipt_number.encode(), hashlib.sha256).digest()[:CHECK_BYTES]
    return base64.b32encode(digest).decode().rstrip("=").lower()


def check_matches(key: bytes, receipt_number: str, check: str) -> bool:
    return hmac.compare_digest(receipt_check(key, receipt_number), check.strip().lower())


def verification_url(base_url: str, receipt_number: str, check: str) -> str:
    return f"{base_url.rstrip('/')}/r/{receipt_number}?c={check}"


def tenant_code_of(receipt_number: str) -> str | None:
    """'DGN-R-00000042' → 'DGN' (receipt numbers are per tenant, prefixed with its code)."""
    head, sep, _ = receipt_number.rpartition("-R-")
    return head if sep and head else None


@dataclass(frozen=True, slots=True)
class ReceiptToken:
    kind: str
    token: str
    tid: int

    @property
    def grouped(self) -> str:
        return group_token(self.token)


@dataclass(frozen=True, slots=True)
class Receipt:
    cgd_name: str
    helpline: str
    emergency_number: str
    receipt_number: str
    created_at: datetime
    channel: str
    consumer_number: str
    customer_name: str
    meter_serial: str
    sts_meter_number: str
    sgc: str
    krn: int
    ti: int
    amount_paise: int
    gas_credit_paise: int
    vat_paise: int
    rate_paise_per_scm: int
    gas_litres: int
    tokens: tuple[ReceiptToken, ...]
    verify_url: str
    deductions: tuple[tuple[str, int], ...] = ()
    agent: str = ""  # "Name (CSC id, village)" for a CSC vend
    payment_reference: str = ""

    @property
    def when_india(self) -> str:
        return to_india(self.created_at).strftime("%d-%m-%Y %H:%M IST")


@dataclass(frozen=True)
class Labels:
    lang: str
    receipt: str
    receipt_number: str
    date: str
    customer: str
    consumer_number: str
    meter: str
    meter_number: str
    amount: str
    deductions: str
    vat: str
    gas_credit: str
    gas: str
    tokens: str
    tid: str
    channel: str
    agent: str
    instructions: str
    scan: str
    helpline: str
    emergency: str
    genuine: str
    token_kinds: dict[str, str] = field(default_factory=dict)
    deduction_kinds: dict[str, str] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)


ENGLISH = Labels(
    lang="en",
    receipt="Gas top-up receipt",
    receipt_number="Receipt no.",
    date="Date",
    customer="Customer",
    consumer_number="Consumer no.",
    meter="Meter",
    meter_number="STS meter no.",
    amount="Amount paid",
    deductions="Deductions",
    vat="VAT included in gas",
    gas_credit="Gas credit",
    gas="Gas",
    tokens="Tokens",
    tid="TID",
    channel="Paid through",
    agent="CSC agent",
    instructions="Enter the tokens on the meter keypad in this order.",
    scan="Scan to check this receipt",
    helpline="Helpline",
    emergency="Gas leak emergency",
    genuine="Genuine receipt",
    token_kinds={"key_change": "Key change", "set_tariff_rate": "Set tariff", "credit": "Credit"},
    deduction_kinds={
        "debt_recovery": "Debt recovery",
        "instalment": "Instalment",
        "fixed_charges": "Fixed charges",
    },
    channels={"online": "Online", "upi": "UPI", "bbps": "BBPS", "csc": "CSC", "b2b": "CGD channel"},
)

HINDI = Labels(
    lang="hi",
    receipt="गैस रिचार्ज रसीद",
    receipt_number="रसीद संख्या",
    date="दिनांक",
    customer="ग्राहक",
    consumer_number="उपभोक्ता संख्या",
    meter="मीटर",
    meter_number="एसटीएस मीटर संख्या",
    amount="भुगतान राशि",
    deductions="कटौतियाँ",
    vat="गैस में शामिल वैट",
    gas_credit="गैस क्रेडिट",
    gas="गैस",
    tokens="टोकन",
    tid="टीआईडी",
    channel="भुगतान माध्यम",
    agent="सीएससी एजेंट",
    instructions="टोकन इसी क्रम में मीटर के कीपैड पर दर्ज करें।",
    scan="इस रसीद की जाँच के लिए स्कैन करें",
    helpline="हेल्पलाइन",
    emergency="गैस रिसाव आपातकाल",
    genuine="असली रसीद",
    token_kinds={"key_change": "कुंजी परिवर्तन", "set_tariff_rate": "दर परिवर्तन", "credit": "क्रेडिट"},
    deduction_kinds={"debt_recovery": "बकाया वसूली", "instalment": "किस्त", "fixed_charges": "स्थायी शुल्क"},
    channels={"online": "ऑनलाइन", "upi": "यूपीआई", "bbps": "बीबीपीएस", "csc": "सीएससी", "b2b": "सीजीडी चैनल"},
)

LABELS: Final = {"en": ENGLISH, "hi": HINDI}


def labels_for(lang: str) -> Labels:
    return LABELS.get(lang, ENGLISH)


def receipt_rows(receipt: Receipt, labels: Labels, *, rupee: str = "₹") -> list[tuple[str, str]]:
    """The receipt's label/value rows in print order (tokens come separately, they are printed large)."""

    def money(paise: int) -> str:
        return format_inr(paise, symbol=False) if not rupee else rupee + format_inr(paise, symbol=False)

    rows = [
        (labels.receipt_number, receipt.receipt_number),
        (labels.date, receipt.when_india),
        (labels.customer, receipt.customer_name),
        (labels.consumer_number, receipt.consumer_number),
        (labels.meter, receipt.meter_serial),
        (labels.meter_number, receipt.sts_meter_number),
        ("SGC / KRN / TI", f"{receipt.sgc} / {receipt.krn} / {receipt.ti}"),
        (labels.channel, labels.channels.get(receipt.channel, receipt.channel)),
    ]
    if receipt.agent:
        rows.append((labels.agent, receipt.agent))
    rows.append((labels.amount, money(receipt.amount_paise)))
    rows.extend(
        (labels.deduction_kinds.get(kind, kind), "-" + money(paise)) for kind, paise in receipt.deductions
    )
    rows.append((labels.vat, money(receipt.vat_paise)))
    rows.append((labels.gas_credit, money(receipt.gas_credit_paise)))
    rows.append((labels.gas, format_scm(receipt.gas_litres)))
    return rows


# --- the 58 mm thermal layout ------------------------------------------------------------------------


def _ascii(text: str) -> str:
    """Thermal printers print their code page, not Unicode: keep ASCII, mark the rest."""
    return text.replace("₹", "Rs.").replace("—", "-").encode("ascii", "replace").decode()


def _pair(label: str, value: str, width: int) -> list[str]:
    label, value = _ascii(label), _ascii(value)
    if len(label) + 1 + len(value) <= width:
        return [label + " " * (width - len(label) - len(value)) + value]
    lines = textwrap.wrap(label, width) or [""]
    lines.extend(v.rjust(width) for v in textwrap.wrap(value, width))
    return lines


def _centre(text: str, width: int) -> list[str]:
    return [line.center(width).rstrip() for line in textwrap.wrap(_ascii(text), width)] or [""]


def thermal_lines(receipt: Receipt, *, width: int = THERMAL_WIDTH) -> list[str]:
    """The receipt as lines of at most `width` ASCII characters, for a 58 mm printer (English: thermal
    printers do not shape Devanagari; the Hindi receipt is the PDF or the HTML print view)."""
    rule = "-" * width
    labels = ENGLISH
    lines: list[str] = []
    lines += _centre(receipt.cgd_name, width)
    lines += _centre(labels.receipt, width)
    lines.append(rule)
    for label, value in receipt_rows(receipt, labels, rupee="Rs."):
        lines += _pair(label, value, width)
    lines.append(rule)
    lines += _centre(labels.tokens.upper(), width)
    for n, token in enumerate(receipt.tokens, start=1):
        kind = labels.token_kinds.get(token.kind, token.kind)
        lines += _pair(f"{n}. {kind}", f"{labels.tid} {token.tid}", width)
        lines += _centre(token.grouped, width)
    lines += textwrap.wrap(labels.instructions, width)
    lines.append(rule)
    lines += _pair(labels.helpline, receipt.helpline or "-", width)
    lines += _pair(labels.emergency, receipt.emergency_number or "-", width)
    lines += textwrap.wrap(labels.scan + ":", width)
    url = _ascii(receipt.verify_url)
    lines += [url[i : i + width] for i in range(0, len(url), width)]
    return lines


def thermal_text(receipt: Receipt, *, width: int = THERMAL_WIDTH) -> str:
    return "\n".join(thermal_lines(receipt, width=width)) + "\n"


ESC, GS = b"\x1b", b"\x1d"


def escpos_bytes(receipt: Receipt) -> bytes:
    """ESC/POS for a 58 mm printer: the thermal lines, the verification QR code, feed and cut."""
    out = bytearray(ESC + b"@")  # initialise
    out += ESC + b"t\x00"  # code page PC437 (ASCII is the same in every page)
    for line in thermal_lines(receipt):
        out += line.encode("ascii", "replace") + b"\n"
    data = receipt.verify_url.encode("ascii", "replace")
    out += ESC + b"a\x01"  # centre the code
    out += GS + b"(k\x04\x001A2\x00"  # QR model 2
    out += GS + b"(k\x03\x001C\x05"  # module size 5 dots
    out += GS + b"(k\x03\x001E1"  # error correction M
    size = len(data) + 3
    out += GS + b"(k" + bytes([size % 256, size // 256]) + b"1P0" + data  # store the data
    out += GS + b"(k\x03\x001Q0"  # print it
    out += ESC + b"a\x00" + b"\n\n\n"
    out += GS + b"VB\x00"  # feed and partial cut
    return bytes(out)
