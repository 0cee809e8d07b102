"""Document downloads streamed to disk, and the guard on URLs a trading partner names.

A document's ``url`` comes from a request body, so fetching it is a request the partner makes
from inside our network (SSRF). ``PartnerDownloader`` fetches only ``https`` URLs whose host is
listed in the sink's ``download_hosts``; it resolves the name itself, refuses loopback, private,
link-local, multicast and otherwise non-global addresses, and connects to the address it checked
(the name still goes into SNI, the certificate check and ``Host``), so a second DNS answer cannot
swap in an internal address. Redirects are followed by hand, each hop checked the same way.

Every body is written to a file as it arrives, never held whole in memory, and stops at a byte
limit (``DownloadRefused``): the caller passes what is left of the event's budget.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path, PurePosixPath
from urllib.parse import SplitResult, unquote, urljoin, urlsplit, urlunsplit

import httpx

from tcwebhook.errors import DownloadRefused, TradecloudApiError, TradecloudNotFound
from tcwebhook.filemodes import PRIVATE_FILE, open_replace

USER_AGENT = "tcwebhook"
MAX_REDIRECTS = 3
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DownloadInfo:
    """What a finished download wrote: the source's name for it, its type and size."""

    filename: str  # as the source names it: pass through ``safe_filename`` before use on disk
    content_type: str
    size: int


def filename_from(headers: httpx.Headers, url: str) -> str:
    """The name in ``Content-Disposition``, else the last segment of the URL's path."""
    disposition = headers.get("content-disposition")
    if disposition:
        msg = Message()
        msg["content-disposition"] = disposition
        name = msg.get_filename()
        if name:
            return name
    return unquote(PurePosixPath(urlsplit(url).path).name) or "document"


def where(url: str | httpx.URL) -> str:
    """Scheme, host and path of a URL: pre-signed query strings are credentials."""
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


async def stream_to_file(response: httpx.Response, dest: Path, limit: int, what: str) -> int:
    """Write the body of ``response`` into ``dest`` (0600, replaced) up to ``limit`` bytes.

    Over the limit the partial file is removed and ``DownloadRefused`` raised; connection
    trouble surfaces as httpx errors for the caller's retry policy.
    """
    fd = await asyncio.to_thread(open_replace, dest, PRIVATE_FILE)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in response.aiter_bytes(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise DownloadRefused(f"{what} is larger than the {limit} bytes left for it")
                await asyncio.to_thread(out.write, chunk)
            await asyncio.to_thread(out.flush)
    except BaseException:
        dest.unlink(missing_ok=True)  # noqa: ASYNC240 - must run even while being cancelled
        raise
    return size


def _address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return _address_allowed(mapped)
    # is_global is False for loopback, private, link-local, shared (CGNAT), reserved, unspecified.
    return address.is_global and not address.is_multicast


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """Which partner URLs may be fetched: ``hosts`` are names or ``*.suffix`` patterns."""

    hosts: tuple[str, ...] = ()
    allow_private: bool = False  # for test rigs and lab networks only
    max_redirects: int = MAX_REDIRECTS

    @classmethod
    def of(cls, hosts: Iterable[str], *, allow_private: bool = False) -> UrlPolicy:
        return cls(tuple(h.strip().lower().rstrip(".") for h in hosts if h.strip()), allow_private)

    def host_listed(self, host: str) -> bool:
        return any(fnmatch.fnmatchcase(host, pattern) if "*" in pattern else host == pattern for pattern in self.hosts)

    async def check(self, url: str) -> tuple[SplitResult, str]:
        """The URL's parts and the address to connect to; ``DownloadRefused`` if not allowed."""
        try:
            parts = urlsplit(url)
            port = parts.port or 443
        except ValueError:
            raise DownloadRefused("the document url is not a valid URL") from None
        if parts.scheme.lower() != "https":
            raise DownloadRefused(f"only https document URLs are fetched, not {parts.scheme or 'a relative'} ones")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise DownloadRefused("the document url names no host")
        if parts.username is not None or parts.password is not None:
            raise DownloadRefused("document URLs with credentials in them are not fetched")
        if not self.host_listed(host):
            raise DownloadRefused(f"host {host} is not in the sink's download_hosts")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            # A name that does not resolve now may resolve later (DNS trouble): retried.
            raise TradecloudApiError(f"cannot resolve {host} ({exc})") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise TradecloudApiError(f"cannot resolve {host}")
        if not self.allow_private:
            refused = [a for a in addresses if not _address_allowed(a)]
            if refused:
                raise DownloadRefused(
                    f"host {host} resolves to {refused[0]}, a loopback, private, link-local or "
                    "multicast address"
                )
        return parts, str(addresses[0])


def _pinned(parts: SplitResult, address: str) -> str:
    ip = f"[{address}]" if ":" in address else address
    netloc = f"{ip}:{parts.port}" if parts.port else ip
    return urlunsplit(("https", netloc, parts.path or "/", parts.query, ""))


class PartnerDownloader:
    """Fetches partner document URLs under a ``UrlPolicy``, streaming each to a file."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy = policy
        # No proxies from the environment: the connection must go to the address we checked.
        self._client = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def download_to(self, url: str, dest: Path, limit: int) -> DownloadInfo:
        """Fetch ``url`` into ``dest``; ``DownloadRefused``, ``TradecloudNotFound`` (404/410)
        or ``TradecloudApiError`` (anything a later attempt may get past)."""
        current = url
        for _ in range(self.policy.max_redirects + 1):
            parts, address = await self.policy.check(current)
            host = parts.hostname or ""
            request = self._client.build_request(
                "GET",
                _pinned(parts, address),
                headers={"Host": host if parts.port is None else f"{host}:{parts.port}"},
                extensions={"sni_hostname": host},
            )
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TransportError as exc:
                raise TradecloudApiError(f"download {where(current)}: {type(exc).__name__}") from None
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise TradecloudApiError(f"download {where(current)}: redirect without Location")
                    current = urljoin(current, location)
                    continue
                if response.status_code in (404, 410):
                    raise TradecloudNotFound(f"document url {where(current)} not found (HTTP {response.status_code})")
                if not 200 <= response.status_code < 300:
                    raise TradecloudApiError(f"download {where(current)}: HTTP {response.status_code}")
                try:
                    size = await stream_to_file(response, dest, limit, f"the document at {where(current)}")
                except httpx.TransportError as exc:
                    raise TradecloudApiError(f"download {where(current)}: {type(exc).__name__}") from None
                content_type = response.headers.get("content-type", "application/octet-stream")
                return DownloadInfo(filename_from(response.headers, current), content_type.split(";")[0].strip(), size)
            finally:
                await response.aclose()
        raise DownloadRefused(f"more than {self.policy.max_redirects} redirects from {where(url)}")
