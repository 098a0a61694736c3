"""Care speaks Hindi beyond its templates: the names its tables give (categories, statuses, topics,
consent purposes), the SMS it sends and the refusals a household reads."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from citygas.care import pages, rules, service
from citygas.customers import profile_service
from citygas.customers.models import Customer
from citygas.notifications.ports import LogNotifier
from citygas.platform.uow import Database
from citygas.web.i18n import catalog
from tests.care.conftest import ASHA_PHONE, Care, relay

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
SMS = [
    "Your %(what)s %(number)s (%(category)s) is registered. We will reply by %(due)s. Track it in the "
    "citygas app under Help.",
    "Gas leak reported: %(number)s. Our emergency team is on its way. Do not use switches or flames, "
    "open doors and windows, close the meter valve, go outside and call %(phone)s.",
    "Your ticket %(number)s is resolved: %(note)s. Not fixed? Reopen it in the app within 7 days.",
    "New reply on your ticket %(number)s. Open the citygas app, Help, to read it.",
    "Your citygas data is ready. Download it from Profile in the app until %(day)s.",
]
NAMES = [
    *(c.label for c in rules.CATEGORIES),
    *rules.STATE_LABELS.values(),
    *pages.HOUSEHOLD_STEPS.values(),
    *(t.label for t in profile_service.TOPICS),
    *(t.explanation for t in profile_service.TOPICS),
    *(p.label for p in profile_service.PURPOSES),
    *(p.explanation for p in profile_service.PURPOSES),
    "complaint",
    "request",
]


@pytest.mark.parametrize("text", sorted(set(NAMES + SMS)))
def test_every_name_and_sms_has_hindi_with_the_same_placeholders(text: str) -> None:
    hindi = catalog("hi").get(text)
    assert hindi, f"no Hindi for {text!r}"
    assert hindi != text
    assert sorted(PLACEHOLDER.findall(hindi)) == sorted(PLACEHOLDER.findall(text))


def test_a_hindi_speaking_household_gets_its_sms_in_hindi(
    db: Database, care: Care, fresh_sms_log: LogNotifier
) -> None:
    with db.unit_of_work(tenant=care.alpha.id) as uow:
        uow.session.execute(update(Customer).where(Customer.phone == ASHA_PHONE).values(language="hi"))
        customer = uow.session.get(Customer, care.asha.id)
        assert customer is not None
        service.do_raise_ticket(
            uow.session, customer=customer, category_code="no_gas", description="सुबह से गैस नहीं आ रही"
        )
        uow.commit()
    relay(db)
    texts = [m.text for m in fresh_sms_log.sent if m.to == ASHA_PHONE]
    assert any("ALP-T-00000001" in t and "शिकायत" in t and "गैस नहीं आ रही या दबाव कम है" in t for t in texts)
