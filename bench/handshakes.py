"""Full TLS handshakes per second against a real `tcwebhook serve` over loopback, per key-exchange group.

    .venv/bin/python bench/handshakes.py [--count 500] [--rounds 3]

Each handshake is a new TCP connection and a full handshake (no session resumption), closed
right after. The client offers one group at a time, so the figures show what each allowed group
costs and that the others are refused. Rounds are interleaved; the best round per group is
reported, as the machine is shared and the slower rounds measure the neighbours; the server's
CPU time per handshake (``server_cpu_ms``) is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pki import make_pki
from bench.targets import Target, free_port, ours_target, write_ours_config

# TLS 1.2 clients list the curves they accept for ECDSA certificates in the same extension, so
# a TLS 1.2 client offering only X25519 or P-384 cannot use the P-256 test certificate.
GROUPS = {
    ssl.TLSVersion.TLSv1_3: ("default", "X25519", "prime256v1", "secp384r1"),
    ssl.TLSVersion.TLSv1_2: ("default", "prime256v1"),
}
REFUSED = ("X448", "secp521r1")


def _context(ca: Path, group: str | None, version: ssl.TLSVersion | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if group is not None:
        ctx.set_ecdh_curve(group)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def _handshake(port: int, ctx: ssl.SSLContext) -> float:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(
        raw, server_hostname="localhost"
    ):
        pass
    return time.perf_counter() - started


def _round(target: Target, ctx: ssl.SSLContext, count: int) -> dict[str, float]:
    cpu = target.cpu_seconds()
    times = [_handshake(target.port, ctx) for _ in range(count)]
    return {
        "per_second": round(count / sum(times), 1),
        "median_ms": round(statistics.median(times) * 1000, 3),
        # Server CPU per handshake: steadier than wall time on a shared machine.
        "server_cpu_ms": round((target.cpu_seconds() - cpu) / count * 1000, 3),
    }


def _refused(port: int, ctx: ssl.SSLContext) -> bool:
    try:
        _handshake(port, ctx)
    except (ssl.SSLError, OSError):
        return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="handshakes per group and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tcwebhook-handshakes-") as tmp:
        directory = Path(tmp)
        pki = make_pki(directory / "pki")
        port = free_port()
        target = ours_target(write_ours_config(directory / "server", pki, port, sink=False), port)
        target.start(pki.ca)
        try:
            results: dict[str, object] = {}
            for version, groups in GROUPS.items():
                label = version.name
                rounds: dict[str, list[dict[str, float]]] = {g: [] for g in groups}
                for _ in range(args.rounds):
                    for group in rounds:
                        ctx = _context(pki.ca, None if group == "default" else group, version)
                        rounds[group].append(_round(target, ctx, args.count))
                results[label] = {g: max(r, key=lambda x: x["per_second"]) for g, r in rounds.items()}
            tls13 = ssl.TLSVersion.TLSv1_3
            results["TLSv1_3 refused"] = {g: _refused(port, _context(pki.ca, g, tls13)) for g in REFUSED}
        finally:
            target.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
