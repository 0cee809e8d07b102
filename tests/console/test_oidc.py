"""Console sign-in with OpenID Connect, in Chromium, against a local OpenID provider over TLS.

One `tcwebhook serve` with the console and `[console.oidc]` pointing at the provider; the browser
follows the real redirects (console → provider's login form → console callback).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import trustme
from selenium.webdriver.remote.webdriver import WebDriver
from tests.console.oidc_idp import CLIENT_ID, CLIENT_SECRET, OpenIdProvider, openid_provider
from tests.console.test_browser import CHROMEDRIVER, CHROMIUM, WAIT, browser, wait_for
from tests.support.servers import RunningServer, ServerFactory, free_port

__all__ = ["browser", "openid_provider"]

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="chromium and chromium-driver are needed"
)
BREAK_GLASS = ("root-admin", "break-glass-password-1")


@dataclass
class SsoStack:
    server: RunningServer
    console_url: str
    provider: OpenIdProvider


@pytest.fixture(scope="module")
def sso(
    test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory, openid_provider: OpenIdProvider
) -> Iterator[SsoStack]:
    # The redirect URL names the console's port, so it is chosen before the console binds.
    port = free_port()
    extra = (
        f"[console]\nenabled = true\nport = {port}\n"
        f'[[console.users]]\nusername = "{BREAK_GLASS[0]}"\npassword = "{BREAK_GLASS[1]}"\nrole = "operator"\n'
        f'[[console.users]]\nusername = "retired"\npassword = "retired-password-1"\ndisabled = true\n'
        f'[console.oidc]\nissuer = "{openid_provider.issuer}"\nclient_id = "{CLIENT_ID}"\n'
        f'client_secret = "{CLIENT_SECRET}"\nredirect_url = "https://localhost:{port}/oidc/callback"\n'
        'operator_values = ["Console.Operator"]\nviewer_values = ["Console.Viewer"]\n'
        f'display_name = "Local IdP"\nca_bundle = "{openid_provider.ca_pem}"\n'
    )
    factory = ServerFactory(test_ca, tmp_path_factory.mktemp("sso"))
    server = factory.start("server", extra=extra)
    try:
        yield SsoStack(server, f"https://localhost:{port}", openid_provider)
    finally:
        factory.stop_all()


def _sign_in(driver: WebDriver, stack: SsoStack, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    d = driver
    d.delete_all_cookies()
    d.get(stack.console_url + "/login")
    d.find_element(By.ID, "sso").click()
    assert wait_for(lambda: "Local IdP sign-in" in d.title, WAIT), d.page_source
    assert d.current_url.startswith(stack.provider.issuer + "/authorize?")
    d.find_element(By.ID, "idp-user").send_keys(username)
    d.find_element(By.ID, "idp-password").send_keys(password)
    d.find_element(By.ID, "idp-submit").click()
    assert wait_for(lambda: d.current_url.startswith(stack.console_url), WAIT)


class TestSignIn:
    def test_operator(self, browser: WebDriver, sso: SsoStack) -> None:
        _sign_in(browser, sso, "alice", "alice-password")
        assert wait_for(lambda: "Overview" in browser.title, WAIT), browser.page_source
        assert "alice@example.com" in browser.page_source
        assert "(operator)" in browser.page_source
        # PKCE: the token request carried the verifier of the challenge the provider checked.
        assert sso.provider.token_requests[-1]["code_verifier"]
        browser.get(sso.console_url + "/events")
        assert "Log in" not in browser.title
        logs = sso.server.logs()
        assert '"method":"oidc"' in logs and "alice@example.com" in logs
        assert CLIENT_SECRET not in logs
        with sqlite3.connect(sso.server.db_path) as conn:
            rows = conn.execute("SELECT actor, action, outcome, detail FROM audit ORDER BY seq").fetchall()
        assert ("alice@example.com", "console.login", "ok") in [r[:3] for r in rows]
        assert any('"method":"oidc"' in r[3] for r in rows)

    def test_viewer(self, browser: WebDriver, sso: SsoStack) -> None:
        _sign_in(browser, sso, "vera", "vera-password")
        assert wait_for(lambda: "Overview" in browser.title, WAIT), browser.page_source
        assert "(viewer)" in browser.page_source

    def test_a_user_without_a_role_is_refused(self, browser: WebDriver, sso: SsoStack) -> None:
        _sign_in(browser, sso, "nora", "nora-password")
        assert wait_for(lambda: "Sign-in refused" in browser.title, WAIT), browser.page_source
        assert "has no tcwebhook role" in browser.page_source
        browser.get(sso.console_url + "/")
        assert "Log in" in browser.title

    def test_a_token_for_another_audience_is_refused(self, browser: WebDriver, sso: SsoStack) -> None:
        sso.provider.audience = "some-other-app"
        try:
            _sign_in(browser, sso, "alice", "alice-password")
            assert wait_for(lambda: "Sign-in refused" in browser.title, WAIT), browser.page_source
            assert "InvalidAudienceError" in browser.page_source
        finally:
            sso.provider.audience = CLIENT_ID

    def test_a_callback_without_the_browsers_flow_is_refused(self, browser: WebDriver, sso: SsoStack) -> None:
        browser.delete_all_cookies()
        browser.get(sso.console_url + "/oidc/callback?code=stolen&state=guessed")
        assert "Sign-in refused" in browser.title

    def test_local_users_stay_for_break_glass_and_can_be_disabled(self, browser: WebDriver, sso: SsoStack) -> None:
        from selenium.webdriver.common.by import By

        retired = ("retired", "retired-password-1")
        for (username, password), expected in ((BREAK_GLASS, "Overview"), (retired, "Log in")):
            browser.delete_all_cookies()
            browser.get(sso.console_url + "/login")
            browser.find_element(By.NAME, "username").send_keys(username)
            browser.find_element(By.NAME, "password").send_keys(password)
            browser.find_element(By.CSS_SELECTOR, "form.login button").click()
            assert wait_for(lambda: expected in browser.title, WAIT), browser.page_source  # noqa: B023
