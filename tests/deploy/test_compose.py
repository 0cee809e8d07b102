"""deploy/compose.yaml: valid for a compose provider, and its services run what the manifests run.

podman 4.3 has no `podman compose`, so `podman-compose config` (the provider `podman compose`
calls, from PyPI) resolves the file: merge keys, interpolation, required variables. Its output is
compared with the Kubernetes manifests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml
from tests.deploy.containers import REPO
from tests.deploy.test_kubernetes import by_kind, manifests

COMPOSE = REPO / "deploy" / "compose.yaml"
PODMAN_COMPOSE = Path(sys.executable).with_name("podman-compose")
REQUIRED = {"TCWEBHOOK_AUTH__BEARER_TOKENS": '["compose-token-0123456789"]', "POSTGRES_PASSWORD": "compose-pw"}


def _config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED and not k.startswith("TCWEBHOOK_")}
    return subprocess.run([str(PODMAN_COMPOSE), "-f", str(COMPOSE), "config"], cwd=COMPOSE.parent,
                          env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False)


# source:target[:ro]; a source may hold ${VAR:-default}, so the target is found from the right.
_MOUNT = re.compile(r"(.+):(/[^:]+)(?::ro)?")


def _target(mount: str) -> str:
    match = _MOUNT.fullmatch(mount)
    assert match, mount
    return match.group(2)


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_services_and_volumes() -> None:
    compose = _compose()
    assert set(compose["services"]) == {"receiver", "worker", "postgres"}
    assert set(compose["volumes"]) == {"tcwebhook-data", "postgres-data"}
    for service in compose["services"].values():
        assert set(service) <= {"image", "user", "read_only", "cap_drop", "security_opt", "tmpfs", "environment",
                                "volumes", "depends_on", "restart", "command", "ports", "healthcheck",
                                "stop_grace_period"}
        for mount in service.get("volumes", []):
            source = _MOUNT.fullmatch(mount).group(1)  # type: ignore[union-attr]
            if source.startswith("./"):
                assert (COMPOSE.parent / source).exists(), f"{source} is not in deploy/"


def test_matches_the_manifests() -> None:
    compose, docs = _compose(), manifests()
    deployments = by_kind(docs, "Deployment")
    pairs = {"receiver": deployments["tcwebhook-receiver"], "worker": deployments["tcwebhook-worker"]}
    secret_keys = set(by_kind(docs, "Secret")["tcwebhook-secrets"]["stringData"])
    images = set()
    for name, deployment in pairs.items():
        service = compose["services"][name]
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        images.add(service["image"])
        assert service["command"] == container["args"]
        context = pod["securityContext"]
        assert service["user"] == f"{context['runAsUser']}:{context['runAsGroup']}"
        assert service["read_only"] is container["securityContext"]["readOnlyRootFilesystem"] is True
        assert service["cap_drop"] == container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert set(service["environment"]) == secret_keys
        compose_mounts = {_target(m) for m in service["volumes"]}
        k8s_mounts = {m["mountPath"] for m in container["volumeMounts"]} - {"/tmp"}
        # compose mounts the config file itself into the folder Kubernetes mounts the ConfigMap on
        assert {p if not p.endswith(".toml") else p.rsplit("/", 1)[0] for p in compose_mounts} >= k8s_mounts
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert len(images) == 1 and re.fullmatch(r"\$\{TCWEBHOOK_IMAGE:-tcwebhook:[\w.]+\}", images.pop())
    receiver = compose["services"]["receiver"]
    container = pairs["receiver"]["spec"]["template"]["spec"]["containers"][0]
    assert receiver["healthcheck"]["test"] == ["CMD", *container["livenessProbe"]["exec"]["command"]]
    assert receiver["ports"] == [f"{container['ports'][0]['containerPort']}:8443"]
    # Secrets that must be given are required (compose refuses to start without them).
    env = receiver["environment"]
    assert ":?" in env["TCWEBHOOK_AUTH__BEARER_TOKENS"] and ":?" in env["TCWEBHOOK_STORE__URL"]
    # The same configuration file as the ConfigMap.
    configmap = by_kind(docs, "ConfigMap")["tcwebhook-config"]["data"]["tcwebhook.toml"]
    compose_config = (COMPOSE.parent / "compose" / "tcwebhook.toml").read_text()
    assert tomllib.loads(compose_config) == tomllib.loads(configmap)
    # The kustomization's image name is the one compose defaults to.
    kustomization = yaml.safe_load((REPO / "deploy" / "kubernetes" / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert f"{image['newName']}:{image['newTag']}" in receiver["image"]


def test_provider_resolves_it() -> None:
    result = _config(REQUIRED)
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = yaml.safe_load(result.stdout)
    receiver, worker = resolved["services"]["receiver"], resolved["services"]["worker"]
    kustomization = yaml.safe_load((REPO / "deploy" / "kubernetes" / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert receiver["image"] == worker["image"] == f"{image['newName']}:{image['newTag']}"
    env = receiver["environment"]
    assert env["TCWEBHOOK_STORE__URL"] == "postgresql://tcwebhook:compose-pw@postgres:5432/tcwebhook"
    assert env["TCWEBHOOK_AUTH__BEARER_TOKENS"] == REQUIRED["TCWEBHOOK_AUTH__BEARER_TOKENS"]
    assert env["TCWEBHOOK_AUTH__BASIC"] == "[]"
    assert receiver["user"] == worker["user"] == "10001:10001" and receiver["read_only"] is True
    assert "./compose/tls:/etc/tcwebhook/tls:ro" in receiver["volumes"]


def test_provider_refuses_missing_secrets() -> None:
    for missing in REQUIRED:
        result = _config({k: v for k, v in REQUIRED.items() if k != missing})
        assert result.returncode != 0
        assert f"required variable {missing} is missing a value: set it in .env" in result.stderr


def test_postgres_service() -> None:
    postgres = _compose()["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_DB"] == "tcwebhook"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
