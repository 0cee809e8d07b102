"""Shared data for the contract tests: the three example bodies of the contract (§9)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tcwebhook.contract.models import Route

DATA = Path(__file__).parent / "data"

EXAMPLES: dict[str, tuple[Route, str]] = {
    "order": ("orders", "order_event_accepted.json"),
    "single_delivery": ("orders", "single_delivery_proposed.json"),
    "shipment": ("shipments", "shipment_issued.json"),
}


def example_bytes(name: str) -> bytes:
    return (DATA / EXAMPLES[name][1]).read_bytes()


def example(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads(example_bytes(name)))


def dumps(data: Any) -> bytes:
    return json.dumps(data).encode()


@pytest.fixture(params=sorted(EXAMPLES))
def example_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)
