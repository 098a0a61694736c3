"""The customer app speaks English and Hindi on every screen: each string the app's templates translate has
a Hindi entry with the same placeholders, and numbers and dates follow Indian conventions."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from citygas.web import app_pages
from citygas.web.i18n import catalog, format_day, format_moment, format_money, translate

TEMPLATES = Path(app_pages.__file__).parent / "templates"
# Screens a household sees: the app and the pages it passes through (payment result).
HOUSEHOLD_TEMPLATES = [*sorted((TEMPLATES / "app").glob("*.html")), TEMPLATES / "pay" / "result.html"]
LITERAL = re.compile(r"""\b_\(\s*(?P<q>["'])(?P<text>(?:(?!(?P=q)).)+)(?P=q)""")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def template_strings() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in HOUSEHOLD_TEMPLATES:
        for match in LITERAL.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match.group("text"), path.name)
    return found


def dynamic_strings() -> list[str]:
    """Strings the templates translate through a variable: the names the app's own tables give."""
    return [*app_pages.CHANNEL_NAMES.values(), *app_pages.TOKEN_KINDS.values()]


def test_the_templates_ask_for_strings() -> None:
    assert len(template_strings()) > 50  # the extractor works (a broken regex would find nothing)


@pytest.mark.parametrize("text", sorted({*template_strings(), *dynamic_strings()}))
def test_every_app_string_has_hindi_with_the_same_placeholders(text: str) -> None:
    hindi = catalog("hi").get(text)
    assert hindi, f"no Hindi for {text!r}"
    assert hindi != text or not re.search("[A-Za-z]{3}", text), f"Hindi entry for {text!r} is English"
    assert sorted(PLACEHOLDER.findall(hindi)) == sorted(PLACEHOLDER.findall(text))


def test_translate_fills_placeholders_and_falls_back_to_english() -> None:
    assert translate("hi", "About %(days)s days left", days=12) == catalog("hi")[
        "About %(days)s days left"
    ] % {"days": 12}
    assert "12" in translate("hi", "About %(days)s days left", days=12)
    assert translate("hi", "a string nobody translated") == "a string nobody translated"
    assert translate("xx", "Top up") == "Top up"  # unknown language → English


def test_indian_number_and_date_formats() -> None:
    assert format_money(12345600) == "₹1,23,456.00"
    assert format_money(-5) == "-₹0.05" or format_money(-5) == "₹-0.05" or format_money(-5).endswith("0.05")
    assert format_day("en", date(2026, 12, 4)) == "4 Dec 2026"
    assert format_day("hi", date(2026, 12, 4)) == "4 दिस॰ 2026"
    # 23:00 UTC on 4 December is 04:30 on 5 December in India.
    assert format_moment("en", datetime(2026, 12, 4, 23, 0, tzinfo=UTC)) == "5 Dec 2026, 04:30"
