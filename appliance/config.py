"""Server configuration: what `cairn server` was asked to run, passed to every worker process.

Contract: a plain, JSON-serialisable value. The CLI builds it from arguments and environment, the
parent process hands it to worker processes through one environment variable, and nothing below
the CLI reads the environment for configuration.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

ENV_VAR = "CAIRN_SERVER_CONFIG"
DEFAULT_REGION = "us-east-1"
# MinIO's layout of a certificates folder, so an existing one can be reused as it is.
CERT_FILE = "public.crt"
KEY_FILE = "private.key"
CAS_DIR = "CAs"


@dataclass
class ServerConfig:
    drives: list[str]
    address: str = ":9000"
    console_address: str = ":9001"
    workers: int = 1
    parity: int | None = None
    set_size: int | None = None  # drives per erasure set; default: chosen from the drive and host counts
    region: str = DEFAULT_REGION
    domains: list[str] = field(default_factory=list)
    lock_dir: str = ""
    root_user: str = ""
    root_password: str = ""
    heal_interval: float = 5.0
    multipart_expiry: float = 24 * 3600.0  # seconds after which an unfinished multipart upload is removed
    heal_throttle: float = 0.01  # seconds the scanner sleeps between objects; 0: unthrottled
    heal_workers: int = 8  # objects healed at once when a blank drive is filled or `cairn admin heal` runs
    scan_interval: float = 300.0  # seconds between the starts of two scanner passes
    # Folder with public.crt + private.key (TLS on the S3 API, the console and internode RPC) and
    # CAs/*.crt (extra CAs trusted for peers); "" when TLS is off.
    certs_dir: str = ""
    # Test-only switch (CAIRN_DEBUG_DISABLE_HEAL=1): no background healer or scanner, so the failure
    # simulator can prove it catches an engine that does not heal. Never set it in production.
    debug_disable_heal: bool = False

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServerConfig:
        raw = os.environ.get(ENV_VAR)
        if not raw:
            raise RuntimeError(f"{ENV_VAR} is not set: start Cairn with `cairn server`")
        return cls(**json.loads(raw))


def trusted_cert_files(certs_dir: str) -> list[str]:
    """PEM files a node trusts beyond the system CAs: its own certificate, then CAs/*.crt."""
    root = Path(certs_dir)
    return [str(root / CERT_FILE)] + sorted(str(p) for p in (root / CAS_DIR).glob("*.crt"))


def split_address(address: str) -> tuple[str, int]:
    """`:9000` -> ("0.0.0.0", 9000); `127.0.0.1:9000` -> ("127.0.0.1", 9000); `[::1]:9000` too."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)
