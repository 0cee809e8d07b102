"""Podman for the container tests: local base images, the image built from a clean checkout.

No image registry is reachable from the test machines, so the base images are root file systems
that Debian's ``mmdebstrap`` builds from Debian packages, imported with ``podman import``. Each is
tagged with a hash of its recipe and reused while it exists (building one takes minutes); the
tcwebhook image itself is built afresh from ``git archive HEAD`` on every run, so files not
committed never reach it.

Podman runs with ``runc`` (crun refuses these kernels' hybrid cgroups) and a containers.conf of
its own with ``default_ulimits = []`` (the sandbox may not raise rlimits).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")  # the build's pip trusts the host's roots
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Documentation, manuals, translations and iconv modules: nothing in the images reads them.
_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*",
             "/usr/lib/x86_64-linux-gnu/gconv/*")
# What the tcwebhook image is built on here instead of the official slim Python image: Debian's
# Python 3.11 with its venv module, no apt (the image installs nothing from Debian).
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
POSTGRES_PACKAGES = ("postgresql-15",)


@dataclass
class Podman:
    """The podman command line with this machine's settings (runtime, containers.conf)."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        conf = self.workdir / "containers.conf"
        conf.write_text('[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(self, *args: str | Path, timeout: float = 300, check: bool = True,
                 stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        argv = ["podman", "--runtime", "runc", *[str(a) for a in args]]
        result = subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout, check=False,
                                input=stdin.decode() if stdin is not None else None, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-4000:]}"
                                 f"\n{result.stderr[-4000:]}")
        return result

    def exists(self, image: str) -> bool:
        return self("image", "exists", image, check=False).returncode == 0

    def inspect(self, what: str, name: str) -> dict[str, Any]:
        data = json.loads(self(what, "inspect", name).stdout)
        return dict(data[0])


def _recipe_tag(name: str, packages: tuple[str, ...], user: str | None) -> str:
    recipe = json.dumps([SUITE, "essential", "merged-usr", packages, _EXCLUDES, user])
    return f"localhost/{name}:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def debian_image(podman: Podman, name: str, packages: tuple[str, ...], *, user: str | None = None) -> str:
    """A Debian root file system with ``packages`` as a local image, built unless already there."""
    tag = _recipe_tag(name, packages, user)
    if podman.exists(tag):
        print(f"{tag}: reused")
        return tag
    started = time.monotonic()
    tar = podman.workdir / f"{name}.tar"
    argv = ["mmdebstrap", "--variant=essential", "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
            f"--include={','.join(packages)}", *[f"--dpkgopt=path-exclude={p}" for p in _EXCLUDES],
            "--format=tar", SUITE, str(tar), MIRROR]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, f"mmdebstrap failed:\n{result.stderr[-4000:]}"
    changes = ["--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    if user:
        changes += ["--change", f"USER {user}"]
    podman("import", *changes, tar, tag, timeout=600)
    tar.unlink()
    print(f"{tag}: built in {time.monotonic() - started:.0f} s")
    return tag


@dataclass(frozen=True)
class BuiltImage:
    name: str
    revision: str
    build_seconds: float
    size_bytes: int


def build_image(podman: Podman, base: str, tag: str) -> BuiltImage:
    """Build the Containerfile from a clean export of HEAD, exactly as docs/deployment.md says."""
    checkout = podman.workdir / "checkout"
    shutil.rmtree(checkout, ignore_errors=True)
    checkout.mkdir()
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=REPO, capture_output=True,
                             check=True).stdout
    archive_path = podman.workdir / "checkout.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(checkout, filter="data")
    archive_path.unlink()
    secret = ["--secret", f"id=ca,src={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []
    previous = podman.inspect("image", tag)["Id"] if podman.exists(tag) else None
    started = time.monotonic()
    podman("build", "-f", "Containerfile", "--format", "docker", "--network", "host",
           "--build-arg", f"BASE={base}", "--build-arg", f"REVISION={revision}", *secret, "-t", tag, checkout,
           timeout=1200)
    seconds = time.monotonic() - started
    built = podman.inspect("image", tag)
    if previous and previous != built["Id"]:
        podman("rmi", previous, check=False)  # the last run's image, now untagged
    # Untagged build stages pile up at about 200 MB per changed checkout; pip's downloads stay in
    # the build's cache mount, so the next build loses little without them.
    podman("image", "prune", "--force", check=False)
    size = int(built["Size"])
    print(f"image {tag}: built in {seconds:.0f} s, {size / 1e6:.0f} MB")
    return BuiltImage(tag, revision, seconds, size)


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Call ``predicate`` until it returns something truthy (returned) or ``timeout`` passes (fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)
