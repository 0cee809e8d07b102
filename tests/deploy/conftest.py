"""Session fixtures of the container tests: podman, the base images and the tcwebhook image."""

from __future__ import annotations

import shutil

import pytest
from tests.deploy.containers import BASE_PACKAGES, POSTGRES_PACKAGES, BuiltImage, Podman, build_image, debian_image

IMAGE_TAG = "localhost/tcwebhook-test:latest"


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: install the Debian packages (.ci/run does)")
    return Podman(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="session")
def tcwebhook_image(podman: Podman) -> BuiltImage:
    base = debian_image(podman, "tcwebhook-test-base", BASE_PACKAGES)
    return build_image(podman, base, IMAGE_TAG)


@pytest.fixture(scope="session")
def postgres_image(podman: Podman) -> str:
    return debian_image(podman, "tcwebhook-test-postgres", POSTGRES_PACKAGES, user="postgres")
