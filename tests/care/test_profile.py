"""The household's profile: connections, notification preferences and consents (each change audited with
who and when), and 'download my data' built in the background with this household's data and no one else's."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from citygas.care import service as care_service
from citygas.customers import profile_service, profile_tasks
from citygas.customers.profile_models import Consent, DataExport, NotificationPreference
from citygas.platform import time as clock
from citygas.platform.audit import AuditEntry
from citygas.platform.context import Actor
from citygas.platform.uow import Database
from tests.care.conftest import (
    ASHA_PHONE,
    BINA_PHONE,
    BRAVO_PHONE,
    Care,
    count,
    csrf,
    household_client,
    relay,
    vend_for,
)
from tests.vending.conftest import START
from tests.web.db_snapshot import differences, snapshot


def post(client: TestClient, path: str, data: dict[str, object]) -> int:
    response = client.post(
        path, data={**data, "csrf_token": csrf(client, "/app/profile")}, follow_redirects=False
    )
    return int(response.status_code)


def audit_rows(db: Database, care: Care, entity_type: str) -> list[AuditEntry]:
    with db.unit_of_work(tenant=care.alpha.id, read_only=True) as uow:
        return list(
            uow.session.execute(
                select(AuditEntry).where(AuditEntry.entity_type == entity_type).order_by(AuditEntry.seq)
            ).scalars()
        )


def test_the_profile_lists_the_households_connections_and_no_one_elses(
    app: TestClient, db: Database, care: Care
) -> None:
    page = household_client(app, db, care.asha).get("/app/profile")

    assert page.status_code == 200
    assert page.text.count('data-testid="connection"') == 2
    assert "ALP-C-00000001" in page.text
    assert "ALP-C-00000003" in page.text
    assert "ALP-C-00000002" not in page.text
    assert "SN0001" in page.text
    assert "Not installed yet" in page.text


def test_notification_choices_are_saved_audited_and_safety_sms_stays_on(
    app: TestClient, db: Database, care: Care
) -> None:
    asha = household_client(app, db, care.asha)
    status = post(
        asha,
        "/app/profile/preferences",
        {
            "low_credit": ["sms", "whatsapp"],
            "tokens_payments": [],
            "service_updates": ["sms"],
            "outages_safety": [],
        },
    )

    with db.unit_of_work(tenant=care.alpha.id, read_only=True) as uow:
        s = uow.session
        rows = {
            r.topic: (r.sms, r.whatsapp, r.email) for r in s.execute(select(NotificationPreference)).scalars()
        }
        wants = (
            profile_service.wants(s, ASHA_PHONE, "low_credit", "whatsapp"),
            profile_service.wants(s, ASHA_PHONE, "tokens_payments", "sms"),
            profile_service.wants(s, ASHA_PHONE, "outages_safety", "sms"),
            profile_service.wants(s, BINA_PHONE, "tokens_payments", "sms"),  # untouched: the default
        )
    audited = audit_rows(db, care, "customer_notification_preference")
    page = asha.get("/app/profile")

    assert status == 303
    assert rows == {"low_credit": (True, True, False), "tokens_payments": (False, False, False)}
    assert wants == (True, False, True, True)
    assert {a.actor_label for a in audited} == {"Asha Rao (ALP-C-00000001)"}
    assert all(a.reason and "notification preferences" in a.reason for a in audited)
    assert len(audited) == 2
    assert 'data-testid="pref-outages_safety-sms"' in page.text
    assert re.search(r'value="sms"\s+checked\s+disabled\s+data-testid="pref-outages_safety-sms"', page.text)


def test_an_unknown_channel_is_refused_and_changes_nothing(app: TestClient, db: Database, care: Care) -> None:
    asha = household_client(app, db, care.asha)
    before = snapshot(db)
    response = asha.post(
        "/app/profile/preferences",
        data={"low_credit": ["pigeon"], "csrf_token": csrf(asha, "/app/profile")},
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert 'role="alert"' in response.text
    assert "pigeon" in response.text
    assert differences(before, snapshot(db)) == {}


def test_consent_is_given_and_withdrawn_with_its_times_and_every_change_audited(
    app: TestClient, db: Database, care: Care
) -> None:
    asha = household_client(app, db, care.asha)
    given = post(asha, "/app/profile/consents", {"purpose": "usage_insights", "decision": "give"})
    clock.freeze(START + timedelta(days=3))
    withdrawn = post(asha, "/app/profile/consents", {"purpose": "usage_insights", "decision": "withdraw"})

    with db.unit_of_work(tenant=care.alpha.id, read_only=True) as uow:
        row = uow.session.execute(select(Consent)).scalar_one()
        allowed = profile_service.has_consent(uow.session, ASHA_PHONE, "usage_insights")
    audited = audit_rows(db, care, "customer_consent")
    page = asha.get("/app/profile")

    assert (given, withdrawn) == (303, 303)
    assert (row.given, row.given_at, row.withdrawn_at) == (False, START, START + timedelta(days=3))
    assert row.notice_version == profile_service.NOTICE_VERSION
    assert not allowed
    assert [(a.after or {}).get("given") for a in audited] == [True, False]
    assert [a.reason for a in audited] == [
        "household gave consent: usage_insights",
        "household withdrew consent: usage_insights",
    ]
    assert {a.actor_label for a in audited} == {"Asha Rao (ALP-C-00000001)"}
    assert 'data-testid="give-usage_insights"' in page.text  # may be given again
    assert "Withdrawn" in page.text


def test_a_consent_form_with_bad_input_changes_nothing(app: TestClient, db: Database, care: Care) -> None:
    asha = household_client(app, db, care.asha)
    before = snapshot(db)
    assert post(asha, "/app/profile/consents", {"purpose": "sell_my_data", "decision": "give"}) == 422
    assert post(asha, "/app/profile/consents", {"purpose": "offers", "decision": "maybe"}) == 422
    assert post(asha, "/app/profile/consents", {"purpose": "offers", "decision": "withdraw"}) == 422
    assert differences(before, snapshot(db)) == {}


def test_download_my_data_holds_the_household_and_nothing_of_another(
    app: TestClient, db: Database, care: Care
) -> None:
    tokens = vend_for(db, care)
    actor = Actor(kind="customer", id=None, label="household")
    with db.unit_of_work(tenant=care.alpha.id, actor=actor) as uow:
        for customer, text in (
            (care.asha, "Asha's meter display is blank"),
            (care.bina, "Bina's secret complaint"),
        ):
            care_service.do_raise_ticket(
                uow.session, customer=customer, category_code="meter_problem", description=text
            )
        uow.commit()
    with db.unit_of_work(tenant=care.bravo.id, actor=actor) as uow:
        care_service.do_raise_ticket(
            uow.session,
            customer=care.bravo_customer,
            category_code="billing",
            description="Bravo household's note",
        )
        uow.commit()
    asha = household_client(app, db, care.asha)
    bina = household_client(app, db, care.bina)
    post(asha, "/app/profile/consents", {"purpose": "offers", "decision": "give"})

    first = post(asha, "/app/profile/export", {})
    again = post(asha, "/app/profile/export", {})  # a double click asks once
    waiting = asha.get("/app/profile")
    relay(db)
    ready = asha.get("/app/profile")
    link = re.search(r'href="(/app/profile/export/[0-9a-f-]+)"', ready.text)
    assert link, ready.text
    download = asha.get(link.group(1))
    stolen = bina.get(link.group(1))

    assert (first, again) == (303, 303)
    assert count(db, care.alpha, DataExport) == 1
    assert 'data-testid="export-requested"' in waiting.text
    assert 'data-testid="export-download"' in ready.text
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["cache-control"] == "no-store"
    data = json.loads(download.text)
    assert data["format"] == profile_service.EXPORT_FORMAT
    assert [c["consumer_number"] for c in data["connections"]] == ["ALP-C-00000001", "ALP-C-00000003"]
    assert [m["serial"] for m in data["meters"]] == ["SN0001"]
    assert [t["token"] for t in data["top_ups"][0]["tokens"]] == tokens
    assert [t["description"] for t in data["tickets"]] == ["Asha's meter display is blank"]
    assert [(c["purpose"], c["given"]) for c in data["consents"]] == [
        ("usage_insights", False),
        ("offers", True),
        ("surveys", False),
    ]
    for other in (BINA_PHONE, "ALP-C-00000002", "Bina", BRAVO_PHONE, "BRV-", "Bravo household"):
        assert other not in download.text
    assert stolen.status_code == 404
    assert "Asha" not in stolen.text


def test_an_export_expires_after_seven_days(app: TestClient, db: Database, care: Care) -> None:
    asha = household_client(app, db, care.asha)
    post(asha, "/app/profile/export", {})
    relay(db)
    with db.unit_of_work(tenant=care.alpha.id, read_only=True) as uow:
        export_id = uow.session.execute(select(DataExport.id)).scalar_one()

    clock.freeze(START + timedelta(days=7, minutes=1))
    gone = asha.get(f"/app/profile/export/{export_id}")
    profile_tasks.expire_data_exports(db)

    with db.unit_of_work(tenant=care.alpha.id, read_only=True) as uow:
        row = uow.session.execute(select(DataExport)).scalar_one()
    assert gone.status_code == 404
    assert (row.status, row.content) == ("expired", None)
    assert 'data-testid="export-expired"' in asha.get("/app/profile").text
