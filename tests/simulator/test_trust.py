"""What the sender sees of a server's certificates, and how it explains a refusal."""

from __future__ import annotations

import ssl

from tcwebhook.simulator.trust import explain_untrusted, fetch_peer_chain

from .conftest import StartServer
from .servers import Pki


class TestProbe:
    """The unverified probe shows what the server sends."""

    def test_chain_as_sent(self, pki: Pki, serve: StartServer, good_context: ssl.SSLContext) -> None:
        server = serve(good_context)
        peer = fetch_peer_chain("localhost", server.port, timeout=3)
        assert len(peer.certificates) == 2 and peer.version in ("TLSv1.2", "TLSv1.3")
        assert peer.certificates[0].issuer == peer.certificates[1].subject

    def test_explanation_without_details(self) -> None:
        assert "not trusted" in explain_untrusted(None, None, "h")
