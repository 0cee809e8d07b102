"""OAuth access tokens checked by ``OAuthValidator`` against the local IdP over loopback TLS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError
from tests.auth.idp import AUDIENCE, CLIENT_ID, IdPServer, ec_key, hs256_with_public_key, rsa_key, tampered, unsigned

from tcwebhook.auth import Authenticator, JwksUnavailable, OAuthValidator, looks_like_jwt
from tcwebhook.config import AuthSettings, OAuthSettings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def idp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdPServer]:
    server = IdPServer(trustme.CA(), tmp_path_factory.mktemp("idp")).start()
    yield server
    server.stop()


@pytest.fixture
def idp(idp_server: IdPServer) -> Iterator[IdPServer]:
    state = idp_server.idp
    keys = list(state.keys)
    yield idp_server
    with state.lock:
        state.keys[:] = keys
        state.down = False


def settings(server: IdPServer, **extra: object) -> OAuthSettings:
    values: dict[str, object] = {
        "issuer": server.idp.issuer,
        "jwks_url": server.idp.jwks_url,
        "audience": [AUDIENCE],
        "allowed_client_ids": [CLIENT_ID],
        "required_roles": ["Webhook.Send"],
        "ca_bundle": server.ca_path,
        "leeway": 5,
        **extra,
    }
    return OAuthSettings.model_validate(values)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def refusal(validator: OAuthValidator, token: str) -> str:
    result = await validator.check(token.encode())
    assert not result.ok and result.scheme == "bearer"
    assert result.description is not None and token not in (result.error or "")
    return result.description


class TestSettings:
    """``[auth.oauth]``: a tenant derives the Entra URLs; incomplete tables are refused."""

    def test_tenant_derives_issuer_and_keys(self) -> None:
        s = OAuthSettings(tenant_id="contoso-tenant", audience="api://hook")
        assert s.issuers[0] == "https://login.microsoftonline.com/contoso-tenant/v2.0"
        assert s.keys_url == "https://login.microsoftonline.com/contoso-tenant/discovery/v2.0/keys"
        assert s.audiences == ("api://hook",)

    @pytest.mark.parametrize(
        "values",
        [
            {"audience": "api://hook"},
            {"issuer": "https://idp.example/", "audience": "api://hook"},
            {"tenant_id": "t"},
            {"issuer": "https://idp.example/", "jwks_url": "http://idp.example/keys", "audience": "a"},
        ],
    )
    def test_incomplete_is_refused(self, values: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            OAuthSettings.model_validate(values)

    def test_jwt_shape(self) -> None:
        assert looks_like_jwt(b"aaa.bbb.ccc") and looks_like_jwt(b"aaa.bbb.")
        assert not looks_like_jwt(b"test-token-0123456789abcdef")
        assert not looks_like_jwt(b"a.b.c.d")


class TestValidation:
    """Each claim and the signature are checked; refusals name what failed."""

    async def test_token_from_the_token_endpoint_is_accepted(self, idp: IdPServer) -> None:
        import httpx

        async with httpx.AsyncClient(verify=str(idp.ca_path)) as client:
            answer = await client.post(
                idp.idp.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": CLIENT_ID,
                    "client_secret": "client-secret-for-tests",
                    "scope": f"{AUDIENCE}/.default",
                },
            )
        assert answer.status_code == 200
        result = await OAuthValidator(settings(idp)).check(answer.json()["access_token"].encode())
        assert result.ok and result.principal == f"oauth:{CLIENT_ID}" and result.scheme == "oauth"

    async def test_v1_appid_and_ec_keys(self, idp: IdPServer) -> None:
        key = idp.idp.rollover(ec_key())
        validator = OAuthValidator(settings(idp))
        token = idp.idp.mint(key, azp=None, appid=CLIENT_ID)
        assert (await validator.check(token.encode())).ok

    @pytest.mark.parametrize(
        ("claims", "expected"),
        [
            ({"exp": 1_000_000}, "exp"),
            ({"nbf": 4_000_000_000}, "nbf"),
            ({"iat": 4_000_000_000}, "iat"),
            ({"iss": "https://evil.example/v2.0"}, "iss"),
            ({"aud": "api://someone-else"}, "aud"),
            ({"azp": "not-tradecloud"}, "azp"),
            ({"roles": ["Other.Role"]}, "roles"),
            ({"roles": None}, "roles"),
            ({"exp": None}, "exp"),
        ],
    )
    async def test_claims(self, idp: IdPServer, claims: dict[str, object], expected: str) -> None:
        description = await refusal(OAuthValidator(settings(idp)), idp.idp.mint(**claims))
        assert f"({expected}" in description

    async def test_empty_client_list_accepts_any_client(self, idp: IdPServer) -> None:
        validator = OAuthValidator(settings(idp, allowed_client_ids=[], required_roles=[]))
        assert (await validator.check(idp.idp.mint(azp="anyone", roles=None).encode())).ok

    async def test_alg_none_is_refused(self, idp: IdPServer) -> None:
        token = unsigned(idp.idp.claims(), idp.idp.current.kid)
        assert "'none'" in await refusal(OAuthValidator(settings(idp)), token)

    async def test_hs256_with_the_public_key_is_refused(self, idp: IdPServer) -> None:
        validator = OAuthValidator(settings(idp))
        assert "'HS256'" in await refusal(validator, hs256_with_public_key(idp.idp))
        assert validator.jwks.fetches == 0  # refused before any key is looked up

    async def test_tampered_payload_is_refused(self, idp: IdPServer) -> None:
        token = tampered(idp.idp.mint(), roles=["Webhook.Send", "Admin"])
        assert "signature" in await refusal(OAuthValidator(settings(idp)), token)

    async def test_key_of_another_type_is_refused(self, idp: IdPServer) -> None:
        ec = idp.idp.rollover(ec_key())
        # an RSA-signed token naming the EC key
        token = idp.idp.mint(idp.idp.keys[0], kid=ec.kid)
        assert "does not match" in await refusal(OAuthValidator(settings(idp)), token)


class TestKeySet:
    """Rollover, rate limiting, and an IdP that is down."""

    async def test_unknown_kid_refreshes_once_then_accepts(self, idp: IdPServer) -> None:
        clock = Clock()
        validator = OAuthValidator(settings(idp, jwks_refresh_interval=60), clock=clock)
        assert (await validator.check(idp.idp.mint().encode())).ok
        assert validator.jwks.fetches == 1
        clock.now += 61
        new = idp.idp.rollover()
        assert (await validator.check(idp.idp.mint(new).encode())).ok
        assert validator.jwks.fetches == 2
        # Random kids within the interval do not reach the IdP: retried once a refresh is allowed.
        clock.now += 10
        for n in range(20):
            with pytest.raises(JwksUnavailable) as unavailable:
                await validator.check(idp.idp.mint(kid=f"random-{n}").encode())
            assert unavailable.value.retry_after == pytest.approx(50)
        assert validator.jwks.fetches == 2
        clock.now += 61
        assert "kid" in await refusal(validator, idp.idp.mint(kid="random-later"))
        assert validator.jwks.fetches == 3

    async def test_down_with_warm_cache_accepts(self, idp: IdPServer) -> None:
        clock = Clock()
        validator = OAuthValidator(settings(idp, jwks_max_age=100), clock=clock)
        assert (await validator.check(idp.idp.mint().encode())).ok
        idp.idp.down = True
        clock.now += 500  # stale: a refetch is tried, fails, and the cached keys keep serving
        assert (await validator.check(idp.idp.mint().encode())).ok
        assert validator.jwks.fetches == 2

    async def test_down_with_cold_cache_is_transient(self, idp: IdPServer) -> None:
        idp.idp.down = True
        validator = OAuthValidator(settings(idp))
        with pytest.raises(JwksUnavailable):
            await validator.check(idp.idp.mint().encode())

    async def test_unknown_kid_while_down_is_transient(self, idp: IdPServer) -> None:
        clock = Clock()
        validator = OAuthValidator(settings(idp), clock=clock)
        assert (await validator.check(idp.idp.mint().encode())).ok
        idp.idp.down = True
        clock.now += 61
        with pytest.raises(JwksUnavailable):
            await validator.check(idp.idp.mint(rsa_key()).encode())

    async def test_private_ca_is_required(self, idp: IdPServer, tmp_path: Path) -> None:
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        validator = OAuthValidator(settings(idp, ca_bundle=other))
        with pytest.raises(JwksUnavailable):
            await validator.check(idp.idp.mint().encode())


class TestBesideStaticCredentials:
    """A Bearer challenge is offered with OAuth alone; refusals describe the failed claim."""

    def test_challenge_with_description(self, idp: IdPServer) -> None:
        auth = Authenticator(AuthSettings(oauth=settings(idp)))
        result = auth.check(b"Bearer a.b.c")
        assert not result.ok and result.scheme == "bearer"
        assert auth.challenges() == (b'Bearer realm="tcwebhook"',)
