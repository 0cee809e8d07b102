"""OAuth access tokens through the real HTTPS receiver (`tcwebhook serve`) and a local IdP."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trustme
from tests.auth.idp import (
    AUDIENCE,
    CLIENT_ID,
    CLIENT_SECRET,
    IdPServer,
    hs256_with_public_key,
    tampered,
    unsigned,
)
from tests.support.servers import TOKEN, RunningServer, ServerFactory


@pytest.fixture(scope="module")
def idp_server(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdPServer]:
    server = IdPServer(test_ca, tmp_path_factory.mktemp("idp")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def factory(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    made = ServerFactory(test_ca, tmp_path_factory.mktemp("oauth"))
    yield made
    made.stop_all()


@pytest.fixture(scope="module")
def receiver(factory: ServerFactory, idp_server: IdPServer) -> RunningServer:
    return factory.start("warm", extra=idp_server.config(jwks_refresh_interval=1))


def order() -> dict[str, Any]:
    return {
        "eventName": "OrderIssuedByBuyer",
        "orderEvent": {
            "orderId": f"order-{uuid.uuid4()}",
            "buyerOrder": {"purchaseOrderNumber": "PO-1"},
            "lastUpdatedAt": "2025-05-02T08:15:29.987Z",
            "lines": [{"id": "l1", "buyerLine": {"position": "0001"}}],
        },
        "meta": {"messageId": str(uuid.uuid4())},
    }


def post(server: RunningServer, token: str) -> httpx.Response:
    with server.client() as client:
        return client.post(server.url_orders, json=order(), headers={"Authorization": f"Bearer {token}"})


def obtain_token(idp_server: IdPServer) -> str:
    """Like Tradecloud: a client-credentials form POST to the token endpoint."""
    answer = httpx.post(
        idp_server.idp.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": f"{AUDIENCE}/.default",
        },
        verify=str(idp_server.ca_path),
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def refused(response: httpx.Response, claim: str) -> None:
    assert response.status_code == 401, response.text
    challenges = response.headers.get_list("www-authenticate")
    bearer = [c for c in challenges if c.startswith("Bearer")]
    assert len(bearer) == 1 and 'error="invalid_token"' in bearer[0], challenges
    assert f"({claim})" in bearer[0] or claim in bearer[0], bearer[0]
    assert any(c.startswith("Basic") for c in challenges)


class TestThroughTheReceiver:
    """Every token case of the issue, posted over HTTPS to `tcwebhook serve`."""

    def test_valid_token_from_the_token_endpoint(self, receiver: RunningServer, idp_server: IdPServer) -> None:
        response = post(receiver, obtain_token(idp_server))
        assert response.status_code == 202, response.text

    @pytest.mark.parametrize(
        ("claims", "claim"),
        [
            ({"exp": int(time.time()) - 3600}, "exp"),
            ({"nbf": int(time.time()) + 3600}, "nbf"),
            ({"iss": "https://login.microsoftonline.com/someone-else/v2.0"}, "iss"),
            ({"aud": "api://not-us"}, "aud"),
            ({"azp": "another-client"}, "azp"),
            ({"roles": ["Reader"]}, "roles"),
        ],
    )
    def test_bad_claims(
        self, receiver: RunningServer, idp_server: IdPServer, claims: dict[str, Any], claim: str
    ) -> None:
        refused(post(receiver, idp_server.idp.mint(**claims)), claim)

    def test_alg_none(self, receiver: RunningServer, idp_server: IdPServer) -> None:
        refused(post(receiver, unsigned(idp_server.idp.claims(), idp_server.idp.current.kid)), "algorithm")

    def test_hs256_signed_with_the_public_key(self, receiver: RunningServer, idp_server: IdPServer) -> None:
        refused(post(receiver, hs256_with_public_key(idp_server.idp)), "algorithm")

    def test_tampered_payload(self, receiver: RunningServer, idp_server: IdPServer) -> None:
        refused(post(receiver, tampered(idp_server.idp.mint(), azp=CLIENT_ID, roles=["Admin"])), "signature")

    def test_static_bearer_and_basic_still_work(self, receiver: RunningServer) -> None:
        with receiver.client() as client:
            assert client.post(receiver.url_orders, json=order(), headers=receiver.bearer()).status_code == 202
            assert client.post(receiver.url_orders, json=order(), headers=receiver.basic_header()).status_code == 202
            wrong = client.post(receiver.url_orders, json=order(), headers={"Authorization": "Bearer nope-static"})
        assert wrong.status_code == 401

    def test_unknown_kid_refreshes_once_after_rollover(
        self, receiver: RunningServer, idp_server: IdPServer
    ) -> None:
        idp = idp_server.idp
        assert post(receiver, idp.mint()).status_code == 202  # key set is warm
        time.sleep(1.1)  # past jwks_refresh_interval
        before = idp.jwks_fetches
        new = idp.rollover()
        assert post(receiver, idp.mint(new)).status_code == 202
        assert idp.jwks_fetches == before + 1
        for n in range(5):  # random kids right after: not asked of the IdP again, retried after the next refresh
            response = post(receiver, idp.mint(kid=f"made-up-{n}"))
            assert response.status_code == 503, response.text
            assert 1 <= int(response.headers["retry-after"]) <= 1
        assert idp.jwks_fetches == before + 1
        time.sleep(1.1)
        refused(post(receiver, idp.mint(kid="made-up-again")), "kid")  # a refresh that still lacks it: 401
        assert idp.jwks_fetches == before + 2

    def test_token_of_a_key_published_after_the_last_refresh(
        self, factory: ServerFactory, idp_server: IdPServer
    ) -> None:
        """Entra publishes a key just after our refresh: 503 until the next one is allowed, then accepted."""
        server = factory.start("rollover", extra=idp_server.config(jwks_refresh_interval=3))
        idp = idp_server.idp
        assert post(server, idp.mint()).status_code == 202
        time.sleep(3.1)
        refused(post(server, idp.mint(kid="not-published")), "kid")  # refreshes now, still missing: 401
        new = idp.rollover()
        early = post(server, idp.mint(new))
        assert early.status_code == 503, early.text
        wait = int(early.headers["retry-after"])
        assert 1 <= wait <= 3
        time.sleep(wait + 0.1)
        assert post(server, idp.mint(new)).status_code == 202

    def test_idp_down_with_warm_cache_is_accepted(self, receiver: RunningServer, idp_server: IdPServer) -> None:
        assert post(receiver, idp_server.idp.mint()).status_code == 202
        idp_server.idp.down = True
        try:
            assert post(receiver, idp_server.idp.mint()).status_code == 202
        finally:
            idp_server.idp.down = False

    def test_token_is_never_logged(self, receiver: RunningServer, idp_server: IdPServer) -> None:
        token = idp_server.idp.mint(aud="api://not-us")
        refused(post(receiver, token), "aud")
        time.sleep(0.2)
        logs = receiver.logs()
        assert token not in logs and token.split(".")[2] not in logs
        failures = [json.loads(line) for line in logs.splitlines() if '"auth_failed"' in line]
        assert failures and all(TOKEN not in json.dumps(f) for f in failures)


def _segment(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


MALFORMED = {
    "numeric-kid": {"alg": "RS256", "kid": 5},
    "object-kid": {"alg": "RS256", "kid": {"x": 1}},
    "crit": {"alg": "RS256", "kid": "k", "crit": ["exp"]},
    "header-not-an-object": [1, 2],
}


class TestMalformedTokens:
    """A malformed token is a 401 counted by the failure limit, never an unhandled error (503)."""

    @pytest.fixture(scope="class")
    def limited(self, factory: ServerFactory, idp_server: IdPServer) -> RunningServer:
        return factory.start("limited", extra=idp_server.config(), env={"TCWEBHOOK_AUTH__FAILURE_LIMIT": "3"})

    @pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
    def test_malformed_header(self, factory: ServerFactory, idp_server: IdPServer, header: object) -> None:
        server = factory.start("malformed", extra=idp_server.config(), env={"TCWEBHOOK_AUTH__FAILURE_LIMIT": "3"})
        token = f"{_segment(header)}.{_segment(idp_server.idp.claims())}.c2lnbmF0dXJl"
        for _ in range(3):
            response = post(server, token)
            assert response.status_code == 401, response.text
        limited = post(server, token)
        assert limited.status_code == 429, limited.text
        assert "Traceback" not in server.logs() and '"request_failed"' not in server.logs()
        server.stop()

    def test_bad_base64(self, limited: RunningServer) -> None:
        response = post(limited, "eyJhbGciOi.e30.c2ln")
        assert response.status_code == 401, response.text
        assert '"request_failed"' not in limited.logs()

    def test_wrong_issuer_with_unknown_kid_never_503(self, factory: ServerFactory, idp_server: IdPServer) -> None:
        """A token that fails the shape checks costs no key lookup: 401 even while the IdP is down."""
        idp_server.idp.down = True
        try:
            server = factory.start("shape", extra=idp_server.config())
            token = idp_server.idp.mint(kid="unknown", iss="https://login.microsoftonline.com/other/v2.0")
            refused(post(server, token), "iss")
        finally:
            idp_server.idp.down = False
        server.stop()


class TestColdCache:
    """No key set was ever fetched and the IdP is down: 503 (retried by Tradecloud), never 401."""

    def test_cold_cache_then_recovery(self, factory: ServerFactory, idp_server: IdPServer) -> None:
        idp_server.idp.down = True
        try:
            server = factory.start("cold", extra=idp_server.config())
            response = post(server, idp_server.idp.mint())
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"]
        finally:
            idp_server.idp.down = False
        time.sleep(2.1)  # the cold-cache retry gap
        assert post(server, idp_server.idp.mint()).status_code == 202
