"""Client addresses: networks from the configuration, and the PROXY protocol header (v1 and v2).

Only the standard library: the configuration validates ``allow_from`` with it at load time.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Tradecloud's published egress addresses (tradecloud-contract §1.1); changes are announced
# at least five working days ahead on status.tradecloud1.com.
PRESETS: dict[str, tuple[str, ...]] = {
    "tradecloud-production": ("35.204.224.107/32", "34.90.20.233/32"),
    "tradecloud-acceptance": ("35.204.36.162/32",),
}


def parse_networks(entries: Iterable[str], key: str, *, presets: bool) -> tuple[Network, ...]:
    """CIDR networks (a bare address is one host) and, where allowed, preset names; ValueError names the bad entry."""
    networks: list[Network] = []
    for entry in entries:
        if presets and entry in PRESETS:
            networks.extend(ipaddress.ip_network(n) for n in PRESETS[entry])
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip()))
        except ValueError as exc:
            known = f" or one of {', '.join(sorted(PRESETS))}" if presets else ""
            raise ValueError(f"[server] {key}: {entry!r} is not an address or CIDR network{known} ({exc})") from None
    return tuple(networks)


def client_address(host: str) -> Address:
    """The address of a peer as the allow-list sees it (IPv4-mapped IPv6 as IPv4)."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def contains(networks: tuple[Network, ...], address: Address) -> bool:
    return any(address in network for network in networks)


# -- PROXY protocol (haproxy.org/download/2.9/doc/proxy-protocol.txt) ----------------------------

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest v1 header, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_MAX = 16 + 4096  # far above what balancers send (addresses plus a few TLVs)
PROXY_MAX = V2_MAX


class ProxyHeaderError(ValueError):
    """The connection does not start with a valid PROXY protocol header."""


@dataclass(frozen=True)
class ProxyHeader:
    """A complete header: its length in bytes and the client it names (None: the proxy's own)."""

    length: int
    client: tuple[str, int] | None


def parse_proxy_header(data: bytes) -> ProxyHeader | None:
    """The PROXY header at the start of ``data``; None while it is incomplete; ProxyHeaderError if invalid.

    None is only returned for a valid prefix of a header, so every byte of ``data`` then belongs
    to the header and may be consumed.
    """
    if data[:12] == V2_SIGNATURE[: len(data)] and (len(data) < 6 or data[:6] != V1_PREFIX):
        return _parse_v2(data)
    if data[:6] == V1_PREFIX[: len(data)]:
        return _parse_v1(data)
    raise ProxyHeaderError("no PROXY protocol header")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX or b"\n" in data[:V1_MAX]:
            raise ProxyHeaderError("PROXY v1 header without CRLF within 107 bytes")
        return None
    parts = data[:end].decode("ascii", "replace").split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":  # the proxy could not tell: its own address stands
        return ProxyHeader(end + 2, None)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("malformed PROXY v1 header")
    _, family, source, destination, sport, dport = parts
    try:
        addresses = ipaddress.ip_address(source), ipaddress.ip_address(destination)
    except ValueError:
        raise ProxyHeaderError("malformed PROXY v1 address") from None
    version = 4 if family == "TCP4" else 6
    ports_ok = all(p.isdigit() and len(p) <= 5 and int(p) <= 65535 for p in (sport, dport))
    if any(a.version != version for a in addresses) or not ports_ok:
        raise ProxyHeaderError("malformed PROXY v1 address")
    return ProxyHeader(end + 2, (str(addresses[0]), int(sport)))


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < 16:
        return None
    version_command, family, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if version_command >> 4 != 2 or version_command & 0x0F not in (0, 1):
        raise ProxyHeaderError("unsupported PROXY v2 version or command")
    if 16 + length > V2_MAX:
        raise ProxyHeaderError("PROXY v2 header too long")
    if len(data) < 16 + length:
        return None
    total = 16 + length
    if version_command & 0x0F == 0:  # LOCAL: the proxy's own connection (health checks)
        return ProxyHeader(total, None)
    payload = data[16:total]
    if family == 0x11 and length >= 12:  # TCP over IPv4
        return ProxyHeader(total, (str(ipaddress.IPv4Address(payload[0:4])), struct.unpack("!H", payload[8:10])[0]))
    if family == 0x21 and length >= 36:  # TCP over IPv6
        return ProxyHeader(total, (str(ipaddress.IPv6Address(payload[0:16])), struct.unpack("!H", payload[32:34])[0]))
    if family == 0x00:  # UNSPEC: no address given
        return ProxyHeader(total, None)
    raise ProxyHeaderError("unsupported PROXY v2 address family")
