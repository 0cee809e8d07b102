"""deploy/kubernetes/ played with `podman kube play`: two receivers, a worker, a PostgreSQL pod.

Webhooks go to both receivers over TLS (ports published to 127.0.0.1), each resent until a 2xx
as Tradecloud does; one receiver container is SIGKILLed mid-run. Afterwards every acknowledged
messageId is stored exactly once and delivered by the files sink exactly once (one file per event).

What podman 4.3 cannot play is adapted mechanically, nothing else: Secrets become ConfigMaps
(its secret volumes need podman's own secret store), the Deployment of two receivers becomes
two Deployments of one (each needs its own published host port), and Service and
PodDisruptionBudget, which podman ignores, are checked for what they select instead.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import trustme
import yaml
from tests.deploy.containers import REPO, BuiltImage, Podman, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

MANIFESTS = REPO / "deploy" / "kubernetes"
UID = 10001
TOKEN = "kube-token-0123456789abcdef"
ORDERS = 8
EVENTS_PER_ORDER = 10
RUN_SECONDS = 120  # the senders' bound
SPOOL = "/var/spool/erp"
RECEIVER_LABELS = {"app.kubernetes.io/name": "tcwebhook", "app.kubernetes.io/component": "receiver"}


def manifests() -> list[dict[str, Any]]:
    """The documents of the kustomization's resources, in its order."""
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((MANIFESTS / resource).read_text()) if d]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _free_port() -> int:
    # podman publishes host ports it is given (a hostPort of 0 is not "any port"), so one is
    # picked here; it is bound by podman moments later.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_configmap_refs(pod_spec: dict[str, Any]) -> None:
    for container in pod_spec["containers"]:
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                source["configMapRef"] = source.pop("secretRef")
    for volume in pod_spec.get("volumes", []):
        if "secret" in volume:
            secret = volume.pop("secret")
            volume["configMap"] = {"name": secret["secretName"], "defaultMode": secret.get("defaultMode", 0o440)}


def render(docs: list[dict[str, Any]], *, image: str, values: dict[str, dict[str, str]], config_text: str,
           spool: Path, receiver_ports: list[int]) -> list[dict[str, Any]]:
    """The manifests as podman 4.3 can play them (see the module's docstring), with test values."""
    out: list[dict[str, Any]] = []
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "Secret":
            assert set(values[name]) == set(doc["stringData"]), f"Secret {name} has other keys"
            out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": values[name]})
        elif kind == "ConfigMap":
            out.append({**doc, "data": {"tcwebhook.toml": config_text}})
        elif kind == "Deployment":
            spec = deepcopy(doc["spec"]["template"]["spec"])
            _as_configmap_refs(spec)
            spec["volumes"].append({"name": "erp", "hostPath": {"path": str(spool), "type": "Directory"}})
            for container in spec["containers"]:
                assert container["image"] == "tcwebhook"
                container["image"] = image
                container["volumeMounts"].append({"name": "erp", "mountPath": SPOOL})
            copies = receiver_ports if name == "tcwebhook-receiver" else [None]
            for n, port in enumerate(copies):
                pod_spec = deepcopy(spec)
                if port is not None:
                    pod_spec["containers"][0]["ports"][0].update(hostPort=port, hostIP="127.0.0.1")
                copy = deepcopy(doc)
                copy["metadata"]["name"] = f"{name}-{'ab'[n]}" if port is not None else name
                copy["spec"]["replicas"] = 1
                copy["spec"]["template"]["spec"] = pod_spec
                out.append(copy)
    return out


def postgres_pod(image: str, password: str, port: int) -> dict[str, Any]:
    """A plain PostgreSQL pod for the test (in production, the operator's database)."""
    script = (
        "set -e; umask 077; printf %s \"$PGPASS\" > /tmp/pw; "
        "/usr/lib/postgresql/15/bin/initdb -D /tmp/pg -U tcwebhook --pwfile=/tmp/pw "
        "--auth-host=scram-sha-256 --auth-local=trust -E UTF8 >/dev/null; "
        "echo 'host all all all scram-sha-256' >> /tmp/pg/pg_hba.conf; "
        "echo 'CREATE DATABASE tcwebhook' "
        "| /usr/lib/postgresql/15/bin/postgres --single -D /tmp/pg postgres >/dev/null; "
        "exec /usr/lib/postgresql/15/bin/postgres -D /tmp/pg -c listen_addresses='*' "
        "-c unix_socket_directories=/tmp -c fsync=off -c max_connections=100"
    )
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "postgres"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "postgres", "image": image, "command": ["sh", "-c", script],
            "env": [{"name": "PGPASS", "value": password}],
            "ports": [{"containerPort": 5432, "hostPort": port, "hostIP": "127.0.0.1"}],
        }]},
    }


def _config_text(docs: list[dict[str, Any]]) -> str:
    """The shipped ConfigMap's TOML with what this test needs: its host name and CA, a files sink."""
    text = str(by_kind(docs, "ConfigMap")["tcwebhook-config"]["data"]["tcwebhook.toml"])
    trust = 'trust_store = "/etc/tcwebhook/tls/ca.crt"'
    for shipped, wanted in (('public_hostname = "webhooks.example.com"', 'public_hostname = "localhost"'),
                            (f"# {trust}", trust)):
        assert shipped in text, f"the ConfigMap no longer has {shipped!r}"
        text = text.replace(shipped, wanted)
    return text + (
        "\n[delivery]\npoll_interval = 0.2\ninitial_delay = 0.2\nmax_delay = 1\nlease_seconds = 5\n"
        f'\n[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "{SPOOL}"\n'
    )


@pytest.fixture
def kube_set(podman: Podman, tcwebhook_image: BuiltImage, postgres_image: str, test_ca: trustme.CA,
             tmp_path: Path) -> Iterator[dict[str, Any]]:
    docs = manifests()
    network = f"tcwebhook-test-{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(18)
    spool = tmp_path / "erp"
    spool.mkdir()
    os.chown(spool, UID, UID)
    leaf = test_ca.issue_cert("localhost", "127.0.0.1")
    values = {
        "tcwebhook-secrets": {
            "TCWEBHOOK_AUTH__BEARER_TOKENS": json.dumps([TOKEN]),
            "TCWEBHOOK_AUTH__BASIC": "[]",
            "TCWEBHOOK_STORE__URL": f"postgresql://tcwebhook:{password}@postgres:5432/tcwebhook",
        },
        "tcwebhook-tls": {
            "tls.crt": leaf.cert_chain_pems[0].bytes().decode(),
            "tls.key": leaf.private_key_pem.bytes().decode(),
            "ca.crt": test_ca.cert_pem.bytes().decode(),
        },
    }
    tls_secret = by_kind(docs, "Secret")["tcwebhook-tls"]
    # The test CA rides along in the TLS Secret (as cert-manager's ca.crt) for [tls] trust_store.
    tls_secret["stringData"]["ca.crt"] = ""
    receiver_ports = [_free_port(), _free_port()]
    pg_port = _free_port()
    rendered = render(docs, image=tcwebhook_image.name, values=values, config_text=_config_text(docs),
                      spool=spool, receiver_ports=receiver_ports)
    app_file, pg_file = tmp_path / "tcwebhook.yaml", tmp_path / "postgres.yaml"
    app_file.write_text(yaml.safe_dump_all(rendered))
    pg_file.write_text(yaml.safe_dump(postgres_pod(postgres_image, password, pg_port)))
    # podman keeps a ConfigMap volume as a named volume of the ConfigMap's name after `kube down`:
    # removed before and after, so no run sees another's certificate.
    configmap_volumes = [d["metadata"]["name"] for d in rendered if d["kind"] == "ConfigMap"]
    podman("volume", "rm", "--force", *configmap_volumes, check=False)
    podman("network", "create", network)
    try:
        podman("kube", "play", "--network", network, pg_file, timeout=120)
        pg_url = f"postgresql://tcwebhook:{password}@127.0.0.1:{pg_port}/tcwebhook"
        wait_for(lambda: _connects(pg_url), 60, "PostgreSQL in its pod")
        started = time.monotonic()
        podman("kube", "play", "--network", network, app_file, timeout=300)
        receivers = [f"https://localhost:{p}" for p in receiver_ports]
        for url in receivers:
            wait_for(lambda url=url: _healthz(url, test_ca), 120, f"{url}/healthz")
        print(f"kube play to both receivers healthy: {time.monotonic() - started:.1f} s")
        yield {"receivers": receivers, "spool": spool, "pg_url": pg_url, "ca": test_ca, "app_file": app_file,
               "rendered": rendered}
    finally:
        for name in ("tcwebhook-receiver-a", "tcwebhook-receiver-b", "tcwebhook-worker"):
            logs = podman("logs", f"{name}-pod-0-{name.split('-')[1]}", check=False)
            print(f"--- {name} (last lines)\n" + "\n".join((logs.stdout + logs.stderr).splitlines()[-5:]))
        podman("kube", "down", app_file, timeout=120, check=False)
        podman("kube", "down", pg_file, timeout=120, check=False)
        podman("network", "rm", "--force", network, check=False)
        podman("volume", "rm", "--force", *configmap_volumes, check=False)
        shutil.rmtree(spool, ignore_errors=True)


def _connects(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _healthz(base: str, ca: trustme.CA) -> bool:
    with ca.cert_pem.tempfile() as ca_file:
        try:
            return httpx.get(f"{base}/healthz", verify=ca_file, timeout=3).status_code == 200
        except httpx.HTTPError:
            return False


def _order_event(order_id: str, seq: int) -> bytes:
    return json.dumps({
        "eventName": "OrderLinesConfirmedBySupplier",
        "orderEvent": {"orderId": order_id, "buyerOrder": {"purchaseOrderNumber": f"PO-{order_id}"},
                       "lastUpdatedAt": f"2025-05-02T08:00:{seq:02d}.000Z"},
        "meta": {"messageId": str(uuid.uuid4())},
    }).encode()


class _Senders:
    """One thread per order: its events in sequence, each resent until a receiver says 2xx."""

    def __init__(self, receivers: list[str], ca_file: str) -> None:
        self.receivers, self.ca_file = receivers, ca_file
        self.acked: dict[str, list[str]] = defaultdict(list)
        self.by_receiver = [0] * len(receivers)
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + RUN_SECONDS
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(ORDERS)]

    def _run(self, n: int) -> None:
        rng = random.Random(n)
        clients = [httpx.Client(verify=self.ca_file, timeout=10) for _ in self.receivers]
        try:
            for seq in range(EVENTS_PER_ORDER):
                body = _order_event(f"kube-{n:02d}", seq)
                target = rng.randrange(len(clients))
                while time.monotonic() < self.deadline:
                    try:
                        answer = clients[target].post(
                            f"{self.receivers[target]}/tradecloud/orders", content=body,
                            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
                        if answer.status_code in (200, 202):
                            with self.lock:
                                self.acked[f"kube-{n:02d}"].append(json.loads(body)["meta"]["messageId"])
                                self.by_receiver[target] += 1
                            break
                        assert answer.status_code == 503, answer.text  # never 500, never a 4xx
                    except httpx.HTTPError:
                        pass
                    target = (target + 1) % len(clients)  # the other receiver next, as a balancer would
                    time.sleep(0.1)
                time.sleep(rng.random() / 10)
        finally:
            for client in clients:
                client.close()

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.acked.values())


def test_manifests_play_and_survive_a_killed_receiver(podman: Podman, kube_set: dict[str, Any]) -> None:
    receivers: list[str] = kube_set["receivers"]
    with kube_set["ca"].cert_pem.tempfile() as ca_file:
        senders = _Senders(receivers, ca_file)
        for thread in senders.threads:
            thread.start()
        total = ORDERS * EVENTS_PER_ORDER
        wait_for(lambda: senders.count() >= total // 4, 60, "a quarter of the events acknowledged")
        podman("kill", "--signal", "KILL", "tcwebhook-receiver-a-pod-0-receiver")
        print(f"killed receiver a after {senders.count()} of {total} acknowledgements")
        for thread in senders.threads:
            thread.join(RUN_SECONDS + 10)
    acked = [m for ids in senders.acked.values() for m in ids]
    assert len(acked) == total, f"only {len(acked)} of {total} acknowledged within {RUN_SECONDS} s"
    assert all(senders.by_receiver), f"each receiver must have answered some: {senders.by_receiver}"
    print(f"acknowledged per receiver: {senders.by_receiver}")

    def stored() -> dict[str, str]:
        with psycopg.connect(kube_set["pg_url"]) as conn:
            rows = conn.execute("SELECT message_id, event_id FROM events").fetchall()
        assert len(rows) == len({m for m, _ in rows}), "a messageId stored twice"
        return dict(rows)

    events = stored()
    assert set(acked) <= set(events) and len(events) == total
    spool: Path = kube_set["spool"]

    def delivered() -> list[str] | None:
        names = [p.name for p in spool.iterdir() if p.suffix == ".json"]
        return names if len(names) >= total else None

    names = wait_for(delivered, 120, "every event delivered to the files sink", interval=0.5)
    for message_id, event_id in events.items():
        assert sum(event_id in name for name in names) == 1, f"{message_id} not delivered exactly once"
    with psycopg.connect(kube_set["pg_url"]) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())
    assert statuses == {"delivered": total}, statuses

    # The manifests' liveness check (tcwebhook health, the exec probe podman turns into a
    # health check) passes on the surviving receiver.
    health = podman("healthcheck", "run", "tcwebhook-receiver-b-pod-0-receiver", check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    inspect = podman.inspect("container", "tcwebhook-receiver-b-pod-0-receiver")
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    assert inspect["Config"]["User"].split(":")[0] == str(UID)
    stats = podman("stats", "--no-stream", "--format", "json", check=False)
    if stats.returncode == 0:
        for row in json.loads(stats.stdout or "[]"):
            if row.get("name", "").startswith("tcwebhook-"):
                print(f"{row['name']}: memory {row.get('mem_usage')}, cpu {row.get('cpu_percent')}")


def test_service_and_budget_select_the_receivers() -> None:
    docs = manifests()
    receiver = by_kind(docs, "Deployment")["tcwebhook-receiver"]
    assert receiver["spec"]["replicas"] == 2
    assert receiver["spec"]["template"]["metadata"]["labels"] == RECEIVER_LABELS
    service = by_kind(docs, "Service")["tcwebhook"]
    assert service["spec"]["type"] == "LoadBalancer" and service["spec"]["selector"] == RECEIVER_LABELS
    assert [(p["port"], p["targetPort"], p["protocol"]) for p in service["spec"]["ports"]] == [(443, "https", "TCP")]
    budget = by_kind(docs, "PodDisruptionBudget")["tcwebhook-receiver"]
    assert budget["spec"]["selector"]["matchLabels"] == RECEIVER_LABELS and budget["spec"]["minAvailable"] == 1
    for deployment in by_kind(docs, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == UID
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                               "capabilities": {"drop": ["ALL"]}}
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
            assert {"name": "tcwebhook-secrets"} in [s.get("secretRef") for s in container["envFrom"]]
    probes = receiver["spec"]["template"]["spec"]["containers"][0]
    assert probes["readinessProbe"]["httpGet"] == {"scheme": "HTTPS", "path": "/healthz", "port": "https"}
    assert probes["livenessProbe"]["exec"]["command"][:2] == ["tcwebhook", "health"]
