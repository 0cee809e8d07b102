"""The container image: built from a clean checkout, run as the README's "Run in a container" says.

Config and certificates are mounted read-only, the data lives in a named volume, the root file
system is read-only. Webhooks arrive over TLS from the host (verified against the test CA) on a
port published to 127.0.0.1; the container is stopped with SIGTERM, replaced by a new one on the
same volume, and the events are read back and recognised as duplicates. Prints the image's size,
its build time and the start-up time (docs/performance.md, "Container image").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import trustme
from tests.deploy.containers import REPO, BuiltImage, Podman, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

TOKEN = "container-token-0123456789abcdef"
UID = 10001
EVENTS = 20


@dataclass
class Site:
    """What an operator puts on the host: the config file, the TLS folder, a named volume."""

    config: Path
    tls: Path
    ca: Path
    volume: str


@pytest.fixture
def site(tmp_path: Path, test_ca: trustme.CA, podman: Podman) -> Iterator[Site]:
    tls = tmp_path / "tls"
    tls.mkdir()
    leaf = test_ca.issue_cert("localhost", "127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(tls / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tls / "key.pem"))
    test_ca.cert_pem.write_to_path(str(tls / "ca.pem"))
    # The key stays private to the container's user, as on a host with the service user.
    os.chown(tls / "key.pem", UID, UID)
    (tls / "key.pem").chmod(0o600)
    config = tmp_path / "tcwebhook.toml"
    config.write_text(
        'data_dir = "/var/lib/tcwebhook"\n'
        '[server]\npublic_hostname = "localhost"\nshutdown_timeout = 5\n'
        '[tls]\ncertfile = "/etc/tcwebhook/tls/cert.pem"\nkeyfile = "/etc/tcwebhook/tls/key.pem"\n'
        'trust_store = "/etc/tcwebhook/tls/ca.pem"\n'
        f'[auth]\nbearer_tokens = ["{TOKEN}"]\n'
    )
    config.chmod(0o644)
    volume = f"tcwebhook-test-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", volume)
    yield Site(config, tls, tls / "ca.pem", volume)
    podman("volume", "rm", "--force", volume, check=False)


def _run(podman: Podman, image: str, site: Site, *args: str) -> str:
    """`podman run` as the README shows it, read-only root, webhook port published to loopback."""
    return podman(
        "run", "--detach", "--read-only", "--publish", "127.0.0.1::8443",
        "--volume", f"{site.config}:/etc/tcwebhook/tcwebhook.toml:ro",
        "--volume", f"{site.tls}:/etc/tcwebhook/tls:ro",
        "--volume", f"{site.volume}:/var/lib/tcwebhook",
        image, *args,
    ).stdout.strip()


def _published_port(podman: Podman, container: str) -> int:
    line = podman("port", container, "8443/tcp").stdout.strip().splitlines()[0]
    host, _, port = line.rpartition(":")
    assert host == "127.0.0.1", line
    return int(port)


def _timestamp(text: str) -> float:
    # Podman's times carry nanoseconds and a zone name: keep microseconds and the offset.
    match = re.match(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?\s*([+-]\d\d:?\d\d|Z)?", text)
    assert match, text
    day, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{day}T{clock}.{(fraction or '0')[:6]:0<6}{zone}").timestamp()


def _listening_at(podman: Podman, container: str) -> float:
    def logged() -> float | None:
        for line in podman("logs", container).stdout.splitlines():
            if '"event":"listening"' in line:
                return _timestamp(json.loads(line)["timestamp"])
        state = podman.inspect("container", container)["State"]
        assert state["Running"], f"exited {state['ExitCode']}:\n{podman('logs', container).stdout[-3000:]}"
        return None

    return float(wait_for(logged, 60, "the listening log line"))


def _events(podman: Podman, image: str, site: Site) -> list[dict[str, object]]:
    out = podman(
        "run", "--rm", "--read-only",
        "--volume", f"{site.config}:/etc/tcwebhook/tcwebhook.toml:ro",
        "--volume", f"{site.tls}:/etc/tcwebhook/tls:ro",
        "--volume", f"{site.volume}:/var/lib/tcwebhook",
        image, "events", "list", "--config", "/etc/tcwebhook/tcwebhook.toml", "--json", "--limit", "1000",
    ).stdout
    return list(json.loads(out))


def _body(n: int) -> bytes:
    return json.dumps({
        "eventName": "OrderIssuedByBuyer",
        "orderEvent": {"orderId": f"container-{n:03d}", "buyerOrder": {"purchaseOrderNumber": f"PO-C-{n:03d}"}},
        "meta": {"messageId": f"container-message-{n:03d}"},
    }).encode()


def _post_all(port: int, ca: Path) -> list[int]:
    with httpx.Client(verify=str(ca), timeout=10) as client:
        return [
            client.post(f"https://localhost:{port}/tradecloud/orders", content=_body(n),
                        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}).status_code
            for n in range(EVENTS)
        ]


def test_image_metadata(podman: Podman, tcwebhook_image: BuiltImage) -> None:
    image = podman.inspect("image", tcwebhook_image.name)
    config = image["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["tcwebhook"]
    assert config["Cmd"] == ["serve", "--config", "/etc/tcwebhook/tcwebhook.toml"]
    assert set(config["ExposedPorts"]) == {"8443/tcp", "8444/tcp"}
    assert "/var/lib/tcwebhook" in config["Volumes"]
    assert image["Healthcheck"]["Test"][1:] == ["tcwebhook", "health", "--config", "/etc/tcwebhook/tcwebhook.toml"]
    labels = config["Labels"]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.revision"] == tcwebhook_image.revision
    assert "org.opencontainers.image.licenses" in labels and "org.opencontainers.image.source" in labels
    size = tcwebhook_image.size_bytes / 1e6
    print(f"image size {size:.0f} MB (target < 200 MB: {'met' if size < 200 else 'missed'})")
    # A generous bound: the 200 MB target is a figure to report (docs/performance.md), this only
    # catches a build that pulls in something gross (a compiler, a second Python).
    assert size < 260


def test_container_round_trip(podman: Podman, tcwebhook_image: BuiltImage, site: Site) -> None:
    image = tcwebhook_image.name
    launched = time.time()
    container = _run(podman, image, site)
    try:
        started = _timestamp(podman.inspect("container", container)["State"]["StartedAt"])
        listening = _listening_at(podman, container)
        port = _published_port(podman, container)
        wait_for(lambda: _healthz(port, site.ca), 30, "/healthz from the host")
        ready = time.time()
        print(f"start to listening {listening - started:.2f} s (target < 5 s); "
              f"podman run to /healthz 200 from the host {ready - launched:.2f} s")

        assert _post_all(port, site.ca) == [202] * EVENTS

        # Non-root, read-only root, writable volume owned by the service user.
        assert podman("exec", container, "id", "-u").stdout.strip() == str(UID)
        denied = podman("exec", container, "touch", "/opt/tcwebhook/probe", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
        owner_mode = podman("exec", container, "stat", "-c", "%u %a", "/var/lib/tcwebhook").stdout.split()
        assert owner_mode == [str(UID), "700"]
        assert podman.inspect("container", container)["HostConfig"]["ReadonlyRootfs"] is True

        # The image's HEALTHCHECK (tcwebhook health: /healthz over TLS, trusting the certificate).
        health = podman("healthcheck", "run", container, check=False)
        assert health.returncode == 0, health.stdout + health.stderr
        state = podman.inspect("container", container)["State"]
        assert (state.get("Health") or state.get("Healthcheck"))["Status"] == "healthy"

        # X25519 is served (the groups of the package's OpenSSL configuration, applied from the image's
        # OPENSSL_CONF without a restart of the process).
        hello = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-groups", "X25519",
                                "-servername", "localhost", "-CAfile", str(site.ca), "-brief"],
                               input="", capture_output=True, text=True, timeout=20, check=False)
        group = re.search(r"(Server|Peer) Temp Key: X25519", hello.stderr + hello.stdout)
        assert group, hello.stderr

        stopping = time.monotonic()
        podman("kill", "--signal", "TERM", container)
        code = podman("wait", container, timeout=30).stdout.strip()
        stopped_in = time.monotonic() - stopping
        print(f"SIGTERM to exit {stopped_in:.2f} s")
        assert code == "0", podman("logs", container).stdout[-3000:]
        assert stopped_in < 10
        logs = podman("logs", container).stdout
        assert '"event":"stopped"' in logs and TOKEN not in logs
    finally:
        podman("rm", "--force", container, check=False)

    stored = _events(podman, image, site)
    assert sorted(e["message_id"] for e in stored) == [f"container-message-{n:03d}" for n in range(EVENTS)]

    # A new container on the same volume (an upgrade, a rescheduled pod) has the same inbox.
    container = _run(podman, image, site)
    try:
        _listening_at(podman, container)
        port = _published_port(podman, container)
        wait_for(lambda: _healthz(port, site.ca), 30, "/healthz after the restart")
        assert _post_all(port, site.ca) == [200] * EVENTS  # all duplicates of what is stored
    finally:
        podman("kill", "--signal", "TERM", container, check=False)
        podman("wait", container, timeout=30, check=False)
        podman("rm", "--force", container, check=False)
    assert len(_events(podman, image, site)) == EVENTS


def _healthz(port: int, ca: Path) -> bool:
    try:
        return httpx.get(f"https://localhost:{port}/healthz", verify=str(ca), timeout=3).status_code == 200
    except httpx.HTTPError:
        return False
