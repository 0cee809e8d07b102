"""One validated, immutable settings object, built once at the edge (the CLI) and passed down.

Sources, later ones winning: defaults, the TOML file (``--config``, else ``./tcwebhook.toml``
when present), environment variables ``TCWEBHOOK_<SECTION>__<KEY>`` (lists and tables as JSON).

A relative path in the file (every ``Path``-typed key, the default ``data_dir`` and a
``sqlite:///`` store URL) is relative to the file's directory, as in systemd units and nginx, so
a command gives the same answer from any working directory. Paths from the environment and
from command-line flags are relative to the working directory, as a shell user expects.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from tcwebhook import storeurl
from tcwebhook.errors import StartupError
from tcwebhook.transport.addresses import parse_networks

# Where they always were: the store modules and the log scrubber import them from here.
redact_url = storeurl.redact_url
url_passwords = storeurl.url_passwords

DEFAULT_CONFIG_FILE = Path("tcwebhook.toml")
ENV_PREFIX = "TCWEBHOOK_"
# Webhook credentials are ours to choose: short ones can be guessed over the internet.
MIN_WEBHOOK_SECRET = 16
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# The Tradecloud API's rule: at most this many requests per second per integration user.
_API_REQUEST_LIMIT = 10.0
# Tradecloud's webhook sender gives up after 60 s; a synchronous answer must leave well before.
MAX_SYNC_DEADLINE = 55.0
DEFAULT_PYTHON_SINK_TIMEOUT = 60.0
# A host name, an IP address, or "*." and a domain: no scheme, port or path.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_PATTERN = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*|[0-9A-Fa-f:]+")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``30m``, ``12h``, ``30d`` or ``2w``; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 30m or 90s")
    return float(match.group(1)) * _SECONDS[match.group(2)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
    host: str = "0.0.0.0"  # noqa: S104 - a webhook receiver must be reachable by Tradecloud
    port: int = Field(default=8443, ge=0, le=65535)
    public_hostname: str | None = None
    http_port: int = Field(default=80, ge=0, le=65535)  # ACME http-01 challenges only, never webhooks
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # Slow clients: whole request (headers + body) must arrive within this many seconds.
    request_timeout: float = Field(default=30.0, gt=0)
    keep_alive_timeout: float = Field(default=15.0, gt=0)
    tls_handshake_timeout: float = Field(default=10.0, gt=0)
    shutdown_timeout: float = Field(default=15.0, gt=0)
    max_connections: int | None = Field(default=1000, gt=0)
    # A retry repeating the bytes of one of the last this many stored bodies is answered as its
    # duplicate from memory (receiver/recent.py); 0 sends every body through parse and store.
    recent_bodies: int = Field(default=4096, ge=0)
    # Request head limits: past them the request is answered 414/431 and the connection closed
    # before the rest is read (the parser's cost of one huge header grows with its square).
    max_request_line_bytes: int = Field(default=8 * 1024, ge=64)
    max_header_bytes: int = Field(default=64 * 1024, ge=256)
    max_header_count: int = Field(default=100, ge=8)
    # Open connections per client address (the PROXY protocol's sender when enabled); 0 = no limit.
    max_connections_per_ip: int = Field(default=64, ge=0)
    # Client addresses or networks (CIDR) allowed to connect, or a preset name; empty = anyone.
    allow_from: tuple[str, ...] = ()
    # A TCP load balancer in front sends the client's address in a PROXY protocol v1/v2 header.
    proxy_protocol: bool = False
    trusted_proxies: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _networks(self) -> ServerSettings:
        parse_networks(self.allow_from, "allow_from", presets=True)
        parse_networks(self.trusted_proxies, "trusted_proxies", presets=False)
        if self.proxy_protocol and not self.trusted_proxies:
            raise ValueError("[server] proxy_protocol needs trusted_proxies (the load balancer's addresses)")
        if self.trusted_proxies and not self.proxy_protocol:
            raise ValueError("[server] trusted_proxies is set but proxy_protocol is off")
        return self


class TlsSettings(_Section):
    certfile: Path | None = None
    keyfile: Path | None = None
    trust_store: Path | None = None
    reload_interval: float = Field(default=30.0, gt=0)
    expiry_warning_days: int = Field(default=30, ge=0)
    # ACME: the certificate for [server] public_hostname is ordered and renewed by tcwebhook.
    acme: bool = False
    acme_directory: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_email: str | None = None
    acme_challenge: Literal["tls-alpn-01", "http-01"] = "tls-alpn-01"
    acme_ca_bundle: Path | None = None  # trust for the ACME server's API (a private CA, tests)
    acme_renew_before_days: float = Field(default=30, gt=0)
    acme_eab_kid: str | None = None
    acme_eab_hmac_key: SecretStr | None = None
    acme_check_interval: float = Field(default=3600.0, gt=0)  # how often renewal is considered


class BasicCredential(_Section):
    username: str = Field(min_length=1)
    password: SecretStr

    @model_validator(mode="after")
    def _no_colon(self) -> BasicCredential:
        if ":" in self.username:
            raise ValueError("a Basic username cannot contain ':' (RFC 7617)")
        if len(self.password.get_secret_value()) < MIN_WEBHOOK_SECRET:
            raise ValueError(f"a Basic password needs at least {MIN_WEBHOOK_SECRET} characters")
        return self


ENTRA_AUTHORITY = "https://login.microsoftonline.com"


class OAuthSettings(_Section):
    """OAuth 2.0 client-credentials access tokens (JWTs) issued by Entra ID, ADFS or B2C."""

    tenant_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")
    issuer: str | tuple[str, ...] | None = None
    jwks_url: str | None = None
    audience: str | tuple[str, ...] = ()
    allowed_client_ids: tuple[str, ...] = ()  # azp / appid; empty = any client
    required_roles: tuple[str, ...] = ()
    ca_bundle: Path | None = None
    leeway: float = Field(default=60.0, ge=0)  # seconds of clock skew on exp / nbf / iat
    # An unknown kid refreshes the key set at most this often, so random kids cannot hammer the IdP.
    jwks_refresh_interval: float = Field(default=60.0, ge=0)
    jwks_max_age: float = Field(default=24 * 3600.0, gt=0)  # refetch a key set older than this
    jwks_timeout: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> OAuthSettings:
        if self.tenant_id is None and (self.issuer is None or self.jwks_url is None):
            raise ValueError("set tenant_id, or both issuer and jwks_url")
        if not self.audiences:
            raise ValueError("audience is required (the Application ID URI or client id of the webhook app)")
        if self.jwks_url is not None and not self.jwks_url.startswith("https://"):
            raise ValueError("jwks_url must start with https://")
        return self

    @property
    def audiences(self) -> tuple[str, ...]:
        return (self.audience,) if isinstance(self.audience, str) else self.audience

    @property
    def issuers(self) -> tuple[str, ...]:
        if self.issuer is not None:
            return (self.issuer,) if isinstance(self.issuer, str) else self.issuer
        # Entra issues v1 tokens (sts.windows.net) unless the app manifest asks for v2; same keys.
        return (f"{ENTRA_AUTHORITY}/{self.tenant_id}/v2.0", f"https://sts.windows.net/{self.tenant_id}/")

    @property
    def keys_url(self) -> str:
        return self.jwks_url or f"{ENTRA_AUTHORITY}/{self.tenant_id}/discovery/v2.0/keys"


class AuthSettings(_Section):
    bearer_tokens: tuple[SecretStr, ...] = ()
    basic: tuple[BasicCredential, ...] = ()
    oauth: OAuthSettings | None = None
    realm: str = "tcwebhook"
    failure_log_window: float = Field(default=60.0, gt=0)
    # Failed authentications per client address within failure_window before 429; 0 = no limit.
    failure_limit: int = Field(default=20, ge=0)
    failure_window: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _tokens_not_empty(self) -> AuthSettings:
        if any(len(t.get_secret_value().strip()) < MIN_WEBHOOK_SECRET for t in self.bearer_tokens):
            raise ValueError(f"a bearer token needs at least {MIN_WEBHOOK_SECRET} characters")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.bearer_tokens or self.basic or self.oauth)


class StoreSettings(_Section):
    url: str | None = None  # default: sqlite:///<data_dir>/inbox.db; or postgresql://…
    busy_timeout: float = Field(default=5.0, gt=0)
    max_batch: int = Field(default=512, gt=0)
    # PostgreSQL only: the reader pool, the commit guarantee and the bounds of a wait.
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=8, gt=0)
    synchronous_commit: Literal["on", "remote_write", "remote_apply"] = "on"
    connect_timeout: float = Field(default=5.0, gt=0)
    statement_timeout: float = Field(default=10.0, gt=0)
    # Delivered events older than this are deleted by the dispatcher (``db prune``); None keeps all.
    retention: float | None = Field(default=None, gt=0)
    # Audit entries older than this are expired by the dispatcher (the chain stays verifiable).
    audit_retention: float | None = Field(default=None, gt=0)

    @field_validator("retention", "audit_retention", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            storeurl.check_store_url(value)
        return value

    @model_validator(mode="after")
    def _pool(self) -> StoreSettings:
        if self.pool_min > self.pool_max:
            raise ValueError("pool_min cannot exceed pool_max")
        return self


class RouteSettings(_Section):
    orders: str = "/tradecloud/orders"
    shipments: str = "/tradecloud/shipments"

    @model_validator(mode="after")
    def _paths(self) -> RouteSettings:
        for name, path in (("orders", self.orders), ("shipments", self.shipments)):
            if not path.startswith("/") or (path.endswith("/") and path != "/"):
                raise ValueError(f"[routes] {name} must start with '/' and not end with '/'")
        if self.orders == self.shipments:
            raise ValueError("[routes] orders and shipments must differ")
        return self


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class DeliverySettings(_Section):
    mode: Literal["async", "sync"] = "async"
    concurrency: int = Field(default=16, gt=0)
    batch_size: int = Field(default=128, gt=0)
    poll_interval: float = Field(default=0.5, gt=0)
    initial_delay: float = Field(default=1.0, gt=0)
    max_delay: float = Field(default=300.0, gt=0)
    multiplier: float = Field(default=2.0, ge=1.0)
    jitter: float = Field(default=0.2, ge=0, le=1)
    max_attempts: int = Field(default=25, gt=0)
    max_age: float = Field(default=7 * 24 * 3600.0, gt=0)  # seconds
    lease_seconds: float = Field(default=60.0, gt=0)
    shutdown_timeout: float = Field(default=10.0, gt=0)
    stale_shipments: bool = True  # skip shipment states older than one already delivered
    stale_orders: bool = False
    # mode = "sync": sinks, enrichment and downloads of one request finish within this, or the
    # answer is 503 and the event is delivered in the background. Tradecloud's sender stops
    # waiting after 60 s, so a later 2xx would never be seen.
    sync_deadline: float = Field(default=45.0, gt=0)

    @field_validator("sync_deadline")
    @classmethod
    def _below_the_senders_timeout(cls, value: float) -> float:
        if value > MAX_SYNC_DEADLINE:
            raise ValueError(
                f"sync_deadline {value:g} s is too close to the 60 s after which Tradecloud's sender stops "
                f"waiting; set {MAX_SYNC_DEADLINE:g} s or less"
            )
        return value


class _SinkSection(_Section):
    """What every ``[[sinks]]`` entry has; ``type`` picks the class that holds the rest."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    events: tuple[str, ...] = ()  # event kinds or event-name globs; empty = all
    # Events of kind "unknown" (an event object this version does not know) go to this sink too,
    # whatever ``events`` says; without it they are held as "unrecognised" until a replay.
    accept_unknown: bool = False
    # Tradecloud API extras (need [tradecloud] credentials)
    enrich: bool = False
    documents: bool = False
    download_urls: bool = False
    # Partner document URLs are fetched only from these hosts (names or "*.example.com"); none by default.
    download_hosts: tuple[str, ...] = ()
    # Test rigs only: let download_hosts resolve to loopback/private addresses.
    allow_private_download_addresses: bool = False
    max_documents: int = Field(default=100, gt=0)  # per event, past it: dead-letter
    max_document_bytes_total: int = Field(default=512 * 1024 * 1024, gt=0)  # per event, all documents
    # What is delivered (README, "Payloads and formats"): the event or the book's current order,
    # as the body received, typed JSON, CSV rows or a Jinja2 template's output.
    payload: Literal["event", "order"] = "event"
    format: Literal["body", "json", "csv", "template"] = "body"
    csv_delimiter: str = Field(default=",", min_length=1, max_length=1)
    csv_decimal: Literal[".", ","] = "."
    csv_header: bool = True
    csv_columns: tuple[str, ...] = ()  # a subset of the CSV columns, in this order; empty = all
    csv_bom: bool = False  # a UTF-8 byte order mark, for spreadsheet imports
    template: Path | None = None  # with format = "template"

    _needs: ClassVar[str]  # the key a sink of this type cannot do without
    _also_needs: ClassVar[tuple[str, ...]] = ()  # further keys without a default

    @model_validator(mode="before")
    @classmethod
    def _keys_of_type(cls, data: Any) -> Any:
        # One sentence naming the key, instead of pydantic's "Field required" / "Extra inputs".
        if not isinstance(data, dict):
            return data
        kind, name = data.get("type"), data.get("name")
        if data.get(cls._needs) in (None, ""):
            raise ValueError(f"sink {name!r} of type {kind!r} needs the key {cls._needs!r}")
        for key in cls._also_needs:
            if data.get(key) in (None, ""):
                raise ValueError(f"sink {name!r} of type {kind!r} needs the key {key!r}")
        foreign = [key for key in data if key not in cls.model_fields]
        if foreign:
            hint = closest(foreign[0], cls.model_fields)
            raise ValueError(f"sink {name!r} of type {kind!r} has no key {foreign[0]!r}{hint}")
        return data

    @model_validator(mode="after")
    def _output_keys(self) -> _SinkSection:
        if self.format == "template" and self.template is None:
            raise ValueError(f"sink {self.name!r}: format = \"template\" needs the key 'template' (a template file)")
        if self.template is not None and self.format != "template":
            raise ValueError(f"sink {self.name!r}: the key 'template' needs format = \"template\"")
        if self.payload == "order" and self.format == "body":
            raise ValueError(
                f"sink {self.name!r}: payload = \"order\" needs format = \"json\", \"csv\" or \"template\""
            )
        if self.csv_delimiter == self.csv_decimal:
            raise ValueError(
                f"sink {self.name!r}: csv_delimiter and csv_decimal must differ (use csv_delimiter = \";\")"
            )
        if self.accept_unknown and self.payload == "order":
            raise ValueError(
                f"sink {self.name!r}: accept_unknown = true needs payload = \"event\" (an unknown event "
                "belongs to no order or shipment in the order book)"
            )
        if self.csv_delimiter in ('"', "\r", "\n"):
            raise ValueError(f"sink {self.name!r}: csv_delimiter cannot be a quote or a line break")
        return self

    @field_validator("download_hosts")
    @classmethod
    def _host_names(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for host in hosts:
            if not _HOST_PATTERN.fullmatch(host):
                raise ValueError(f"download_hosts: {host!r} is not a host name (or *.domain)")
        return tuple(h.lower() for h in hosts)


class PythonSinkSettings(_SinkSection):
    type: Literal["python"] = "python"
    callable: str  # "package.module:function"
    # A handler that never returns would hold its delivery (and, in sync mode, the request) for ever.
    timeout: float = Field(default=DEFAULT_PYTHON_SINK_TIMEOUT, gt=0)

    _needs = "callable"

    @property
    def target(self) -> str:
        return self.callable


class HttpSinkSettings(_SinkSection):
    type: Literal["http"] = "http"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token: SecretStr | None = None
    basic_username: str | None = None
    basic_password: SecretStr | None = None
    verify: bool = True
    ca_bundle: Path | None = None
    timeout: float = Field(default=10.0, gt=0)
    permanent_codes: tuple[int, ...] = (400, 404, 409, 422)

    _needs = "url"

    @model_validator(mode="after")
    def _url_scheme(self) -> HttpSinkSettings:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"sink {self.name!r}: url must start with http:// or https://")
        return self

    @property
    def target(self) -> str:
        return self.url


class FilesSinkSettings(_SinkSection):
    type: Literal["files"] = "files"
    directory: Path
    subfolders: bool = False  # one folder per event kind
    # Files 0640 and new folders 0750 instead of 0600/0700: for an ERP import user in our group.
    group_readable: bool = False

    _needs = "directory"

    @property
    def target(self) -> str:
        return str(self.directory)


class SftpSinkSettings(_SinkSection):
    type: Literal["sftp"] = "sftp"
    host: str
    port: int = Field(default=22, gt=0, lt=65536)
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    private_key: Path | None = None
    passphrase: SecretStr | None = None  # of private_key
    known_hosts: Path  # the server's key is pinned: never trusted on first use
    remote_dir: str = "."
    # Fields in braces (see sinks/patterns.py); the default is the files sink's name.
    filename: str = "{stem}{ext}"
    timeout: float = Field(default=30.0, gt=0)  # connecting, and each file operation

    _needs = "host"
    _also_needs = ("username", "known_hosts")

    @model_validator(mode="after")
    def _one_credential(self) -> SftpSinkSettings:
        if (self.password is None) == (self.private_key is None):
            raise ValueError(f"sink {self.name!r}: set either password or private_key")
        if self.passphrase is not None and self.private_key is None:
            raise ValueError(f"sink {self.name!r}: passphrase needs private_key")
        return self

    @property
    def target(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}/{self.remote_dir.lstrip('/')}"


class AmqpSinkSettings(_SinkSection):
    type: Literal["amqp"] = "amqp"
    url: SecretStr  # amqps://user:password@host/vhost, or amqp:// to loopback only
    ca_bundle: Path | None = None  # amqps: the CA that signed the broker's certificate
    exchange: str = Field(default="tradecloud", min_length=1)
    routing_key: str = "tradecloud.{kind}.{eventName}"
    # Declare a durable topic exchange and a durable single-active-consumer queue bound to it.
    declare: bool = False
    queue: str | None = None  # with declare: the queue's name (default: the exchange's)
    timeout: float = Field(default=30.0, gt=0)  # connecting, and waiting for a confirm

    _needs = "url"

    @model_validator(mode="after")
    def _url_scheme(self) -> AmqpSinkSettings:
        url = self.url.get_secret_value()
        if not url.startswith(("amqp://", "amqps://")):
            raise ValueError(f"sink {self.name!r}: url must start with amqps:// (or amqp:// to loopback)")
        host = (urlsplit(url).hostname or "").lower()
        if url.startswith("amqp://") and host not in _LOOPBACK_HOSTS:
            raise ValueError(f"sink {self.name!r}: amqp:// is plain text; use amqps:// for {host or 'a remote host'}")
        if self.queue is not None and not self.declare:
            raise ValueError(f"sink {self.name!r}: queue is declared only with declare = true")
        return self

    @property
    def target(self) -> str:
        return f"{redact_url(self.url.get_secret_value())} exchange {self.exchange}"


class SqlSinkSettings(_SinkSection):
    type: Literal["sql"] = "sql"
    url: SecretStr  # postgresql://, mariadb:// or mysql://, mssql+<driver>://, sqlite:///path
    # Default: tradecloud_events (rows = "event") or tradecloud_lines (rows = "lines"); "schema.table" works.
    table: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
    # "event": one row per event; "lines": one row per schedule/shipment line, the CSV format's columns.
    rows: Literal["event", "lines"] = "event"
    create_table: bool = False
    timeout: float = Field(default=30.0, gt=0)  # connecting, and each statement's wait for a lock

    _needs = "url"

    @property
    def table_name(self) -> str:
        return self.table or ("tradecloud_lines" if self.rows == "lines" else "tradecloud_events")

    @property
    def target(self) -> str:
        return f"{redact_url(self.url.get_secret_value())} table {self.table_name}"


_SINK_CLASSES = (
    PythonSinkSettings,
    HttpSinkSettings,
    FilesSinkSettings,
    SftpSinkSettings,
    AmqpSinkSettings,
    SqlSinkSettings,
)

SinkSettings = Annotated[
    PythonSinkSettings | HttpSinkSettings | FilesSinkSettings | SftpSinkSettings | AmqpSinkSettings | SqlSinkSettings,
    Discriminator("type"),
]
"""One ``[[sinks]]`` entry, of the class its ``type`` names."""

_SINK_TYPES = tuple(c.model_fields["type"].default for c in _SINK_CLASSES)


class TradecloudSettings(_Section):
    api_base: str = "https://api.accp.tradecloud1.com/v2"
    username: str | None = None
    password: SecretStr | None = None
    ca_bundle: Path | None = None
    timeout: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    refresh_interval: float = Field(default=9 * 60.0, gt=0)
    # Tradecloud allows 10 requests per second per integration user; this is this process's share.
    max_requests_per_second: float = Field(default=8.0, gt=0)

    @model_validator(mode="after")
    def _safe_api(self) -> TradecloudSettings:
        if self.max_requests_per_second > _API_REQUEST_LIMIT:
            raise ValueError(
                f"max_requests_per_second {self.max_requests_per_second:g} exceeds the {_API_REQUEST_LIMIT:g} "
                "requests per second the Tradecloud API allows per integration user; set 10 or less (8 leaves room)"
            )
        parts = urlsplit(self.api_base)
        # The integration user's password goes to this address; loopback is for test doubles.
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS):
            raise ValueError("api_base must be an https:// URL")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.username and self.password)


class ConsoleUser(_Section):
    """One login of the operator console; ``password`` in clear text is for tests and dev only."""

    username: str = Field(min_length=1, max_length=200)
    password_hash: SecretStr | None = None  # argon2, from `tcwebhook console hash-password`
    password: SecretStr | None = None
    role: Literal["viewer", "operator"] = "viewer"
    disabled: bool = False  # kept for break-glass, refused at login until enabled again

    @model_validator(mode="after")
    def _one_password(self) -> ConsoleUser:
        if (self.password_hash is None) == (self.password is None):
            raise ValueError(f"console user {self.username!r} needs exactly one of password_hash or password")
        if self.password_hash is not None and not self.password_hash.get_secret_value().startswith("$argon2"):
            raise ValueError(
                f"console user {self.username!r}: password_hash is not an argon2 hash "
                "(make one with `tcwebhook console hash-password`)"
            )
        if self.password is not None and not self.password.get_secret_value():
            raise ValueError(f"console user {self.username!r}: the password cannot be empty")
        return self


class ConsoleOidcSettings(_Section):
    """Console sign-in with an OpenID Connect provider (authorization code flow with PKCE)."""

    issuer: str | None = None  # e.g. https://accounts.example.com
    tenant_id: str | None = None  # Microsoft Entra ID: the issuer is derived from the tenant
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    redirect_url: str  # https://<console host>/oidc/callback, as registered at the provider
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    role_claim: str = "roles"  # "roles" (app roles) or "groups"
    operator_values: tuple[str, ...] = ()
    viewer_values: tuple[str, ...] = ()
    username_claim: str = "preferred_username"
    display_name: str = "single sign-on"  # the sign-in button's text names it
    ca_bundle: Path | None = None  # a provider with a private CA
    leeway: float = Field(default=60.0, ge=0, le=300)
    timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _coherent(self) -> ConsoleOidcSettings:
        if (self.issuer is None) == (self.tenant_id is None):
            raise ValueError("[console.oidc] needs exactly one of issuer or tenant_id")
        if self.issuer is not None and not self.issuer.startswith("https://"):
            raise ValueError("[console.oidc] issuer must be an https:// URL")
        if not self.redirect_url.startswith("https://") or not self.redirect_url.endswith("/oidc/callback"):
            raise ValueError("[console.oidc] redirect_url must be https://<console host>/oidc/callback")
        if not (self.operator_values or self.viewer_values):
            raise ValueError(
                "[console.oidc] maps no role: set operator_values and/or viewer_values (values of role_claim)"
            )
        if "openid" not in self.scopes:
            raise ValueError("[console.oidc] scopes must include openid")
        return self

    @property
    def issuer_url(self) -> str:
        if self.issuer is not None:
            return self.issuer.rstrip("/")
        return f"https://login.microsoftonline.com/{self.tenant_id}/v2.0"


class ConsoleSettings(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"  # operators reach it through a tunnel or a proxy, not the internet
    port: int = Field(default=8444, ge=0, le=65535)
    certfile: Path | None = None  # default: [tls] certfile
    keyfile: Path | None = None  # default: [tls] keyfile
    users: tuple[ConsoleUser, ...] = ()
    session_idle_timeout: float = Field(default=30 * 60.0, gt=0)  # seconds without a request
    # Failed logins in the window: at most login_attempts per (username, client address), and
    # login_attempts_per_address per address whatever the usernames.
    login_attempts: int = Field(default=5, gt=0)
    login_attempts_per_address: int = Field(default=20, gt=0)
    login_window: float = Field(default=300.0, gt=0)
    # Reverse proxies in front of the console: their X-Forwarded-For names the operator's address.
    trusted_proxies: tuple[str, ...] = ()
    oidc: ConsoleOidcSettings | None = None

    @model_validator(mode="after")
    def _pairs(self) -> ConsoleSettings:
        parse_networks(self.trusted_proxies, "[console] trusted_proxies", presets=False)
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("[console] certfile and keyfile go together")
        names = [u.username for u in self.users]
        if len(names) != len(set(names)):
            raise ValueError("[[console.users]] usernames must be unique")
        return self


class ReconcileSettings(_Section):
    """Background reconciliation against the Tradecloud polling API (off unless ``interval``)."""

    interval: float | None = None  # seconds between runs, e.g. "15m"; None = off
    action: Literal["fetch", "resend", "report"] = "fetch"
    orders: bool = True
    shipments: bool = True
    since: float = 24 * 3600.0  # first run looks back this far; later runs resume at the high-water mark
    grace: float = 120.0  # changes younger than this may still be on their way as webhooks
    page_size: int = Field(default=100, gt=0, le=100)
    lease: float = Field(default=300.0, gt=0)

    @field_validator("interval", "since", "grace", "lease", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if value is None or value == "off":
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return parse_duration(str(value).lower())

    @model_validator(mode="after")
    def _positive(self) -> ReconcileSettings:
        if self.interval is not None and self.interval <= 0:
            raise ValueError("interval must be positive (or left out to turn reconciliation off)")
        return self


class WorkerSettings(_Section):
    """``tcwebhook worker``: where it serves /metrics and /healthz (plain HTTP); off unless a port is set."""

    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)


class ConnectSettings(_Section):
    """What ``tcwebhook connect`` sets in the company's Tradecloud webhook settings."""

    company_id: str | None = None  # the company's Tradecloud id (portal: My Company)
    format: Literal["json", "txml"] = "json"
    single_delivery: bool = False
    enabled_event_names: tuple[str, ...] = ()  # empty = every documented name
    order_documents: bool = True  # also set the order-documents webhook
    shipments: bool = True  # also set the shipment webhook


class TelemetrySettings(_Section):
    """OpenTelemetry traces over OTLP/HTTP; keys left unset fall back to the ``OTEL_*`` variables."""

    enabled: bool = False
    # The traces URL, e.g. https://collector:4318/v1/traces (else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
    endpoint: str | None = None
    headers: dict[str, SecretStr] = {}  # e.g. an API key of a hosted back-end
    timeout: float = Field(default=10.0, gt=0)
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    # A delivery continues the request's trace within this many seconds of it, later it is linked.
    resume_within: float = Field(default=3600.0, gt=0)
    export_delay_ms: int = Field(default=2000, ge=10)
    resource_attributes: dict[str, str] = {}


class Settings(BaseSettings):
    """Everything tcwebhook reads from its configuration; immutable once built."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    data_dir: Path = Path("data")
    server: ServerSettings = ServerSettings()
    tls: TlsSettings = TlsSettings()
    auth: AuthSettings = AuthSettings()
    store: StoreSettings = StoreSettings()
    routes: RouteSettings = RouteSettings()
    logging: LoggingSettings = LoggingSettings()
    delivery: DeliverySettings = DeliverySettings()
    sinks: tuple[SinkSettings, ...] = ()
    tradecloud: TradecloudSettings = TradecloudSettings()
    console: ConsoleSettings = ConsoleSettings()


    reconcile: ReconcileSettings = ReconcileSettings()
    connect: ConnectSettings = ConnectSettings()
    worker: WorkerSettings = WorkerSettings()
    telemetry: TelemetrySettings = TelemetrySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; the environment overrides it.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _unique_sinks(self) -> Settings:
        names = [s.name for s in self.sinks]
        if len(names) != len(set(names)):
            raise ValueError("sink names must be unique")
        return self

    @model_validator(mode="after")
    def _acme_reachable_through_allow_from(self) -> Settings:
        # tls-alpn-01 is validated on the webhook port, from the CA's (unpublished) addresses,
        # which the allow-list closes before TLS; http-01 uses its own listener.
        if self.tls.acme and self.tls.acme_challenge == "tls-alpn-01" and self.server.allow_from:
            raise ValueError(
                "[server] allow_from would refuse the CA's tls-alpn-01 validation: "
                'set [tls] acme_challenge = "http-01"'
            )
        return self

    @model_validator(mode="after")
    def _acme_needs_a_name(self) -> Settings:
        if self.tls.acme and not self.server.public_hostname:
            raise ValueError(
                "[tls] acme = true needs [server] public_hostname, the name the certificate is ordered for"
            )
        return self

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.data_dir / 'inbox.db'}"

    @property
    def store_location(self) -> str:
        """The store URL as it may be shown: without its password."""
        return redact_url(self.store_url)


def _leaves(annotation: Any) -> list[Any]:
    """The types an annotation may hold: ``Annotated``, unions and ``None`` taken apart."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _leaves(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [leaf for arg in get_args(annotation) for leaf in _leaves(arg)]
    return [annotation]


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [t for t in _leaves(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]


def _items(annotation: Any) -> list[Any]:
    """The element annotations of the tuple or list types an annotation may hold."""
    return [get_args(t)[0] for t in _leaves(annotation) if get_origin(t) in (tuple, list) and get_args(t)]


def _model_for(annotation: Any, data: Mapping[str, Any]) -> type[BaseModel] | None:
    """The model a table of the file is read into (a sink by its ``type``)."""
    models = _models(annotation)
    if len(models) > 1:
        tagged = [m for m in models if "type" in m.model_fields and m.model_fields["type"].default == data.get("type")]
        return tagged[0] if tagged else None
    return models[0] if models else None


def _relative_to(value: Any, annotation: Any, base: Path) -> Any:
    """``value`` (as read from the file) with every relative path under ``base``.

    Guided by the annotations, so any new ``Path``-typed key, in any section or sink, gets it.
    """
    if isinstance(value, str) and Path in _leaves(annotation):
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else base / path)
    if isinstance(value, list):
        element = _items(annotation)
        return [_relative_to(v, element[0], base) for v in value] if element else value
    if isinstance(value, dict):
        model = _model_for(annotation, value)
        if model is None:
            return value
        return {
            k: _relative_to(v, model.model_fields[k].annotation, base) if k in model.model_fields else v
            for k, v in value.items()
        }
    return value


def _file_relative(data: dict[str, Any], base: Path) -> dict[str, Any]:
    resolved: dict[str, Any] = _relative_to(data, Settings, base)
    resolved.setdefault("data_dir", str(base / "data"))
    store = resolved.get("store")
    if isinstance(store, dict) and isinstance(store.get("url"), str):
        url: str = store["url"]
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            store["url"] = f"sqlite:///{base / url.removeprefix('sqlite:///')}"
    return resolved


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose keys are at ``loc`` (a pydantic error location, type tags included)."""
    model: type[BaseModel] = Settings
    annotation: Any = None
    for part in loc:
        if isinstance(part, int):
            items = _items(annotation)
            annotation = items[0] if items else None
            continue
        if annotation is not None and part in _SINK_TYPES:
            tagged = _model_for(annotation, {"type": part})
            if tagged is not None:
                model, annotation = tagged, None
                continue
        if annotation is not None:
            models = _models(annotation)
            if len(models) != 1:
                return None
            model = models[0]
        if part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
    if annotation is None:
        return model
    models = _models(annotation)
    return models[0] if len(models) == 1 else None


def closest(word: str, known: Any) -> str:
    """`` (did you mean `x`?)`` for the known name nearest ``word``, or nothing."""
    names = {str(k).lower(): str(k) for k in known}
    match = difflib.get_close_matches(word.lower(), list(names), n=1, cutoff=0.6)
    return f" (did you mean `{names[match[0]]}`?)" if match else ""


def _toml_lines(text: str) -> Iterator[tuple[int, tuple[str, ...], str | None]]:
    """(line number, table path with array indices, key or None for a header) of each line."""
    table: tuple[str, ...] = ()
    arrays: dict[tuple[str, ...], int] = {}
    header = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
    assign = re.compile(r"^\s*([A-Za-z0-9_.\-\"' ]+?)\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        if match := header.match(line):
            names = tuple(p.strip().strip("\"'") for p in match.group(2).split("."))
            if match.group(1) == "[[":
                arrays[names] = arrays.get(names, -1) + 1
                table = (*names, str(arrays[names]))
            else:
                parent = names[:-1]
                table = (*parent, str(arrays[parent]), names[-1]) if parent in arrays else names
            yield number, table, None
        elif match := assign.match(line):
            yield number, table, match.group(1).strip().strip("\"'")


def _line_of(text: str, loc: tuple[str, ...]) -> int | None:
    """The line of the file where ``loc`` is written (its key, else its table), if found."""
    table_line = None
    for number, table, key in _toml_lines(text):
        if key is None:
            if table == loc or (table_line is None and table == loc[:-1]):
                table_line = number
        elif (*table, *key.split(".")) == loc:
            return number
    return table_line


def _env_name(loc: tuple[str, ...], environ: Mapping[str, str]) -> str | None:
    """The ``TCWEBHOOK_…`` variable the value at ``loc`` came from, if the environment set it."""
    upper = {k.upper(): k for k in environ}
    for end in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(loc[:end]).upper()
        if name in upper:
            return upper[name]
    return None


def _describe(exc: ValidationError, text: str | None, source: Path | None, environ: Mapping[str, str]) -> str:
    first = exc.errors()[0]
    raw = first["loc"]
    loc = raw
    if len(loc) > 2 and loc[0] == "sinks" and loc[2] in _SINK_TYPES:
        loc = (*loc[:2], *loc[3:])  # the type tag pydantic adds is not a key of the file
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] in ("union_tag_not_found", "union_tag_invalid"):
        msg = "a sink needs type = " + ", ".join(repr(t) for t in _SINK_TYPES[:-1]) + f" or {_SINK_TYPES[-1]!r}"
    parts = tuple(str(p) for p in loc)
    if first["type"] == "extra_forbidden" and parts:
        model = _model_at(raw[:-1])
        msg = "unknown key" + (closest(parts[-1], model.model_fields) if model is not None else "")
    elif foreign := re.search(r"has no key '([^']+)'", msg):
        parts = (*parts, foreign.group(1))
    where = ".".join(parts) or "configuration"
    variable = _env_name(parts, environ)
    if variable is not None:
        return f"Invalid configuration from the environment variable {variable}: {where}: {msg}."
    if source is None:
        return f"Invalid configuration: {where}: {msg}."
    line = _line_of(text or "", parts) if parts else None
    return f"Invalid configuration in {source}{f' line {line}' if line else ''}: {where}: {msg}."


def _known_variables() -> list[str]:
    names = []
    for name, field in Settings.model_fields.items():
        names.append(ENV_PREFIX + name.upper())
        for model in _models(field.annotation):
            names += [f"{ENV_PREFIX}{name.upper()}__{key.upper()}" for key in model.model_fields]
    return names


def environment_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One sentence for each ``TCWEBHOOK_…`` variable that sets nothing (a typo, a removed key)."""
    environ = os.environ if environ is None else environ
    known = _known_variables()
    prefixes = tuple(n + "__" for n in known)
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known and not upper.startswith(prefixes):
            warnings.append(f"the environment variable {name} is not a tcwebhook setting{closest(upper, known)}")
    return warnings


def config_source(path: Path | None) -> Path | None:
    """The file ``load_settings`` reads: ``path``, else ``./tcwebhook.toml`` when present."""
    if path is not None:
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any) and the environment into a validated ``Settings``.

    ``overrides`` are applied on top of the file (CLI flags); the environment still wins.
    Raises ``StartupError`` with one sentence naming the bad key (and its line, or the variable).
    """
    data: dict[str, Any] = {}
    text: str | None = None
    source = config_source(path)
    if source is not None:
        try:
            text = source.read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except FileNotFoundError:
            raise StartupError(
                f"Config file {source} does not exist: create it with `tcwebhook init {source}`."
            ) from None
        except IsADirectoryError:
            raise StartupError(f"Config file {source} is a directory: give the path of the TOML file.") from None
        except PermissionError:
            raise StartupError(
                f"Config file {source} cannot be read by this user: check its owner and mode (0600 or 0640)."
            ) from None
        except OSError as exc:
            raise StartupError(f"Config file {source} cannot be read ({exc.strerror}).") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise StartupError(f"Config file {source} is not valid TOML ({exc}): fix the syntax.") from None
        data = _file_relative(data, source.resolve().parent)
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, key = dotted.rpartition(".")
        target = data.setdefault(section, {}) if section else data
        target[key] = value
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise StartupError(_describe(exc, text, source, os.environ)) from None
