"""What operators do in the console lands in the audit log, with who, from where, and the outcome."""

from __future__ import annotations

import pytest

from tcwebhook.audit import verify

from .conftest import OPERATOR, VIEWER, ClientFactory, Seeded, login

pytestmark = pytest.mark.anyio
ORIGIN = {"origin": "https://console.test"}


async def test_sign_in_actions_and_sign_out_are_recorded(client_factory: ClientFactory, seeded: Seeded) -> None:
    failed = await login(client_factory.new(), OPERATOR[0], "not-the-password")
    assert failed.status_code == 401
    client, csrf = await client_factory.logged_in(OPERATOR)
    r = await client.post("/events/replay", data={"event_id": seeded.dead_id, "csrf_token": csrf}, headers=ORIGIN)
    assert r.status_code == 303
    r = await client.post(f"/quarantine/{seeded.quarantine_id}/reprocess", data={"csrf_token": csrf})
    assert r.status_code == 303
    r = await client.post("/dead/replay", data={"sink": "erp", "csrf_token": csrf})
    assert r.status_code == 303
    page = await client.get("/audit")
    assert page.status_code == 200 and "The chain holds" in page.text
    r = await client.post("/logout", data={"csrf_token": csrf})
    assert r.status_code == 303

    entries = await seeded.inbox.audit_entries()
    seen = [(e.action, e.actor, e.outcome) for e in entries]
    assert seen == [
        ("console.login", OPERATOR[0], "failed"),
        ("console.login", OPERATOR[0], "ok"),
        ("events.replay", OPERATOR[0], "ok"),
        ("quarantine.reprocess", OPERATOR[0], "refused"),
        ("events.replay", OPERATOR[0], "ok"),
        ("console.logout", OPERATOR[0], "ok"),
    ]
    assert all(e.source == "192.0.2.7" for e in entries)
    assert seeded.dead_id in entries[2].target
    assert OPERATOR[1] not in " ".join(e.detail for e in entries)
    assert (await verify(seeded.inbox)).broken is None


async def test_the_audit_page_is_for_operators(client_factory: ClientFactory, seeded: Seeded) -> None:
    client, _csrf = await client_factory.logged_in(VIEWER)
    assert (await client.get("/audit")).status_code == 403
