"""Settings: `config/chatd.toml` defaults, then `CHATD_*` environment, then CLI flags.

Every field is named `<section>_<key>`; its environment variable is `CHATD_<SECTION>_<KEY>`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT_DIR = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = ROOT_DIR / "config" / "chatd.toml"
SECTIONS = ("server", "redis", "mongo", "limits", "auth")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ConfigError(Exception):
    """Raised with every problem found, one per line, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    server_host: str = "0.0.0.0"
    server_port: int = 3000
    server_worker_id: int = 0
    server_trust_proxy: bool = False
    server_cors_origins: str = ""
    server_drain_secs: float = 5.0
    server_log_level: str = "INFO"
    server_static_dir: str = ""
    server_metrics_allow: str = "127.0.0.0/8,::1"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "chatd"
    redis_presence_ttl_secs: int = 15
    redis_tail_messages: int = 500
    redis_tail_ttl_secs: int = 21_600
    redis_cluster: bool = False
    redis_cluster_nodes: str = ""
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_db: str = "chatd"
    mongo_timeout_secs: float = 2.0
    mongo_layout: str = "auto"
    mongo_restart_program: str = ""
    limits_message_chars: int = 2000
    limits_frame_bytes: int = 1_000_000
    limits_rate_burst: int = 20
    limits_rate_per_minute: int = 120
    limits_history: int = 50
    limits_replay: int = 500
    limits_replay_bytes: int = 262_144
    limits_outbuf_bytes: int = 1_048_576
    limits_connections_per_ip: int = 0
    limits_ping_interval_secs: int = 25
    limits_ping_timeout_secs: int = 20
    limits_edit_minutes: int = 15
    limits_kick_minutes: int = 10
    auth_secret: str = ""
    auth_jwks_url: str = ""
    auth_audience: str = ""
    auth_issuer: str = ""
    auth_token_secret: str = ""
    auth_token_secret_file: str = "var/token.secret"  # noqa: S105 - a path, not a secret
    auth_token_days: int = 365

    @property
    def static_path(self) -> Path:
        return Path(self.server_static_dir) if self.server_static_dir else ROOT_DIR / "static"

    @property
    def token_secret_path(self) -> Path:
        return ROOT_DIR / self.auth_token_secret_file

    @property
    def sign_in(self) -> bool:
        """Tokens come from the deployment's login and are required."""
        return bool(self.auth_secret or self.auth_jwks_url)

    @property
    def metrics_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        parts = [p.strip() for p in self.server_metrics_allow.split(",") if p.strip()]
        return [ipaddress.ip_network(p, strict=False) for p in parts]

    @property
    def allowed_origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.server_cors_origins.split(",") if o.strip()]

    def env_name(self, field_name: str) -> str:
        return "CHATD_" + field_name.upper()

    def validate(self) -> None:
        """Raise ConfigError naming every invalid setting."""
        problems: list[str] = []

        def bad(name: str, why: str) -> None:
            problems.append(f"{self.env_name(name)}={getattr(self, name)!r}: {why}")

        if not 0 <= self.server_port <= 65535:
            bad("server_port", "must be 0..65535")
        if not 0 <= self.server_worker_id <= 99:
            bad("server_worker_id", "must be 0..99")
        if self.server_drain_secs < 0 or self.server_drain_secs > 30:
            bad("server_drain_secs", "must be 0..30 seconds")
        if self.server_log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            bad("server_log_level", "must be DEBUG, INFO, WARNING or ERROR")
        for origin in self.allowed_origins:
            if origin == "*" or urlparse(origin).scheme not in ("http", "https"):
                bad("server_cors_origins", f"{origin!r} is not an http(s) origin ('*' is refused)")
        try:
            self.metrics_networks  # noqa: B018 - parsing is the check
        except ValueError as exc:
            bad("server_metrics_allow", f"not a list of networks: {exc}")
        if not self.static_path.is_dir():
            bad("server_static_dir", f"{self.static_path} is not a directory")
        redis_url = urlparse(self.redis_url)
        if redis_url.scheme == "redis+sentinel":
            bad("redis_url", "Sentinel is not supported; name the master, or a Redis Cluster node")
        elif redis_url.scheme not in ("redis", "rediss", "unix"):
            bad("redis_url", "must be a redis://, rediss:// or unix:// URL")
        elif (
            redis_url.scheme in ("redis", "rediss")
            and redis_url.hostname not in LOOPBACK_HOSTS
            and not redis_url.password
        ):
            # Whoever can PUBLISH to the bus can push events to every client (docs/guarantees.md
            # L11), so a Redis off this machine must require a password.
            bad(
                "redis_url", "a Redis that is not on loopback needs a password (redis://:PASS@host)"
            )
        self._validate_cluster(redis_url.scheme, redis_url.path, bad)
        plain_prefix = self.redis_prefix.replace("-", "").replace("_", "")
        if not plain_prefix.isalnum():
            bad("redis_prefix", "must be letters, digits, '-' or '_'")
        if not 3 <= self.redis_presence_ttl_secs <= 300:
            bad("redis_presence_ttl_secs", "must be 3..300")
        if not 50 <= self.redis_tail_messages <= 100_000:
            bad("redis_tail_messages", "must be 50..100000")
        elif self.limits_history <= 1000 and self.redis_tail_messages < self.limits_history:
            bad("redis_tail_messages", "must hold at least limits.history messages")
        if not 60 <= self.redis_tail_ttl_secs <= 30 * 86_400:
            bad("redis_tail_ttl_secs", "must be 60..2592000 (30 days)")
        if self.mongo_layout not in ("auto", "single", "blocks"):
            bad("mongo_layout", "must be auto, single or blocks")
        if not re.fullmatch(r"[A-Za-z0-9_.-]*", self.mongo_restart_program):
            bad("mongo_restart_program", "must be a supervisord program name (or empty)")
        if urlparse(self.mongo_url).scheme not in ("mongodb", "mongodb+srv"):
            bad("mongo_url", "must be a mongodb:// or mongodb+srv:// URL")
        if not self.mongo_db or any(c in self.mongo_db for c in '/\\. "$'):
            bad("mongo_db", "must be a plain database name")
        if not 0.1 <= self.mongo_timeout_secs <= 60:
            bad("mongo_timeout_secs", "must be 0.1..60 seconds")
        if not 1 <= self.limits_message_chars <= 100_000:
            bad("limits_message_chars", "must be 1..100000")
        # Above 1 MB a polling POST pins memory (docs/guarantees.md L4), so cap it there.
        if not 4096 <= self.limits_frame_bytes <= 1_000_000:
            bad("limits_frame_bytes", "must be 4096..1000000")
        elif self.limits_message_chars * 4 + 512 > self.limits_frame_bytes:
            bad("limits_frame_bytes", "too small for the longest message in UTF-8")
        if self.limits_rate_burst < 1:
            bad("limits_rate_burst", "must be at least 1")
        if self.limits_rate_per_minute < 1:
            bad("limits_rate_per_minute", "must be at least 1")
        if not 1 <= self.limits_history <= 1000:
            bad("limits_history", "must be 1..1000")
        if not 1 <= self.limits_replay <= 10_000:
            bad("limits_replay", "must be 1..10000")
        if not 4096 <= self.limits_replay_bytes <= self.limits_outbuf_bytes // 2:
            # A join's history is one packet: it must fit a client's output bound with room.
            bad("limits_replay_bytes", "must be 4096..half of limits.outbuf_bytes")
        if not 0 <= self.limits_connections_per_ip <= 1_000_000:
            bad("limits_connections_per_ip", "must be 0 (no cap)..1000000")
        if not 65_536 <= self.limits_outbuf_bytes <= 64 * 1_048_576:
            bad("limits_outbuf_bytes", "must be 65536..67108864")
        if not 1 <= self.limits_ping_interval_secs <= 300:
            bad("limits_ping_interval_secs", "must be 1..300")
        if not 1 <= self.limits_ping_timeout_secs <= 300:
            bad("limits_ping_timeout_secs", "must be 1..300")
        if not 0 <= self.limits_edit_minutes <= 10_080:
            bad("limits_edit_minutes", "must be 0 (no edits)..10080 (a week)")
        if not 1 <= self.limits_kick_minutes <= 10_080:
            bad("limits_kick_minutes", "must be 1..10080 (a week)")
        if self.auth_secret and self.auth_jwks_url:
            bad("auth_jwks_url", "set auth.secret or auth.jwks_url, not both")
        if self.auth_secret and len(self.auth_secret) < 32:
            bad("auth_secret", "must be at least 32 characters")
        if self.auth_jwks_url and urlparse(self.auth_jwks_url).scheme not in ("http", "https"):
            bad("auth_jwks_url", "must be an http(s) URL")
        if self.auth_token_secret and len(self.auth_token_secret) < 32:
            bad("auth_token_secret", "must be at least 32 characters")
        if not 1 <= self.auth_token_days <= 3650:
            bad("auth_token_days", "must be 1..3650")
        if problems:
            raise ConfigError(problems)

    @property
    def cluster_nodes(self) -> list[tuple[str, int]]:
        """`redis.cluster_nodes` as (host, port) pairs; raises ValueError on a bad entry."""
        nodes = []
        for entry in (e.strip() for e in self.redis_cluster_nodes.split(",")):
            if not entry:
                continue
            host, sep, port = entry.rpartition(":")
            if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{entry!r} is not host:port")
            nodes.append((host.strip("[]"), int(port)))
        return nodes

    def _validate_cluster(self, scheme: str, path: str, bad: Callable[[str, str], None]) -> None:
        """A Redis Cluster is named by any of its nodes; it has only database 0, and Sentinel
        or a socket path cannot name one."""
        if not self.redis_cluster:
            if self.redis_cluster_nodes.strip():
                bad("redis_cluster_nodes", "only with CHATD_REDIS_CLUSTER=true")
            return
        if scheme not in ("redis", "rediss"):
            bad("redis_cluster", "a cluster is named by a redis:// or rediss:// URL of one node")
        elif path.strip("/") not in ("", "0"):
            bad("redis_url", "a Redis Cluster has only database 0 (end the URL with /0 or /)")
        try:
            nodes = self.cluster_nodes
        except ValueError as exc:
            bad("redis_cluster_nodes", f"must be comma-separated host:port ({exc})")
            return
        password = urlparse(self.redis_url).password
        if not password and any(host not in LOOPBACK_HOSTS for host, _ in nodes):
            # The nodes share the URL's password; the rule for redis_url holds for each.
            bad("redis_cluster_nodes", "nodes off loopback need a password in CHATD_REDIS_URL")


def _coerce(name: str, kind: str, raw: Any) -> Any:
    """`kind` is the field's annotation, a string under `from __future__ import annotations`."""
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{name}: {raw!r} is not a boolean")
    if kind == "int":
        if isinstance(raw, bool):
            raise ValueError(f"{name}: {raw!r} is not an integer")
        try:
            return int(str(raw).strip())
        except ValueError:
            raise ValueError(f"{name}: {raw!r} is not an integer") from None
    if kind == "float":
        try:
            return float(str(raw).strip())
        except ValueError:
            raise ValueError(f"{name}: {raw!r} is not a number") from None
    return str(raw)


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    defaults_file: Path = DEFAULTS_FILE,
) -> Settings:
    """Build Settings from the three layers; raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    kinds = {f.name: str(f.type) for f in fields(Settings)}
    values: dict[str, Any] = {}
    problems: list[str] = []

    data: dict[str, Any] = {}
    if defaults_file.is_file():
        # A broken file is one more problem to list, not a traceback.
        try:
            with defaults_file.open("rb") as fh:
                data = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{defaults_file}: not valid TOML: {exc}")
        for section, table in data.items():
            if section not in SECTIONS or not isinstance(table, dict):
                problems.append(f"{defaults_file}: unknown section [{section}]")
                continue
            for key, raw in table.items():
                values[f"{section}_{key}"] = raw

    for name in kinds:
        env_key = "CHATD_" + name.upper()
        if env_key in environ:
            values[name] = environ[env_key]

    for name, raw in (overrides or {}).items():
        if raw is not None:
            values[name] = raw

    typed: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in kinds:
            problems.append(f"unknown setting {name!r}")
            continue
        try:
            typed[name] = _coerce("CHATD_" + name.upper(), kinds[name], raw)
        except ValueError as exc:
            problems.append(str(exc))
    settings = dataclasses.replace(Settings(), **typed)
    try:
        settings.validate()
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return settings
