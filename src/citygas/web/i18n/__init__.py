"""Languages of the customer app: English (the source) and Hindi.

Strings are keyed by their English text, gettext style: a template writes `{{ _("Top up") }}` or
`{{ _("%(days)s days left", days=n) }}` and gets the caller's language. Hindi lives in flat JSON files
under `i18n/hi/`, one per area of the app (`app.json`, `care.json`, ...), merged at start-up; a test
checks that every string the app's templates ask for has a Hindi entry, so no screen is half-translated.

Numbers keep Indian grouping in both languages (₹1,23,456.00) and Latin digits, as Indian banks and
UPI apps do in Hindi; dates use Hindi month names in Hindi.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Final

from citygas.platform.money import format_inr, format_scm
from citygas.platform.time import to_india

LANGUAGES: Final[dict[str, str]] = {"en": "English", "hi": "हिन्दी"}
DEFAULT_LANGUAGE: Final = "en"
_CATALOG_DIR: Final = Path(__file__).parent

_MONTHS: Final[dict[str, tuple[str, ...]]] = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "hi": (
        "जन॰", "फ़र॰", "मार्च", "अप्रैल", "मई", "जून", "जुल॰", "अग॰", "सित॰", "अक्टू॰", "नव॰", "दिस॰",
    ),
}  # fmt: skip


def language_of(value: str | None) -> str:
    """Any language code → one we have; unknown codes fall back to English."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


@cache
def catalog(lang: str) -> Mapping[str, str]:
    """The merged catalog for a language: every `i18n/<lang>/*.json` file; a key twice is an error."""
    merged: dict[str, str] = {}
    folder = _CATALOG_DIR / lang
    if lang == DEFAULT_LANGUAGE or not folder.is_dir():
        return merged
    for path in sorted(folder.glob("*.json")):
        entries = json.loads(path.read_text(encoding="utf-8"))
        for key, value in entries.items():
            if key in merged and merged[key] != value:
                raise ValueError(f"{path.name} translates {key!r} differently from another catalog file")
            merged[key] = value
    return merged


def translate(lang: str, text: str, /, **values: object) -> str:
    """`text` in `lang` (English when there is no translation), with `%(name)s` placeholders filled."""
    translated = catalog(language_of(lang)).get(text, text)
    return translated % values if values else translated


def format_money(paise: int) -> str:
    return format_inr(paise)


def format_gas(litres: int) -> str:
    return format_scm(litres)


def format_day(lang: str, value: date | datetime | None) -> str:
    """4 Dec 2026 / 4 दिस॰ 2026 (datetimes are shown on the Indian calendar day)."""
    if value is None:
        return "—"
    day = to_india(value).date() if isinstance(value, datetime) else value
    return f"{day.day} {_MONTHS[language_of(lang)][day.month - 1]} {day.year}"


def format_moment(lang: str, value: datetime | None) -> str:
    """4 Dec 2026, 18:30 (India time; a 24-hour clock in both languages)."""
    if value is None:
        return "—"
    local = to_india(value)
    return f"{format_day(lang, local.date())}, {local:%H:%M}"


def format_month(lang: str, value: date) -> str:
    return f"{_MONTHS[language_of(lang)][value.month - 1]} {value.year}"
