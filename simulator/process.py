"""Processes and plain HTTP for whoever starts `cairn server`: the simulator, its network lab, the tests.

Contract: `tool(name)` is a console script of the running virtualenv (`cairn`, `aws`), or
FileNotFoundError naming scripts/setup; `clean_env()` is this process's environment without the
settings that would change a server or a client; `group_members(pgid)` lists the live processes of a
process group (what a kill must wait for); `http_status` answers a plain GET's status or None when
nothing answered; `free_port` is a loopback port nothing listens on now; `s3_client` is boto3 as
every harness uses it: path-style, SigV4, no retries, the timeouts the caller gives.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

BIN_DIR = Path(sys.executable).parent
REGION = "us-east-1"


def tool(name: str) -> str:
    """A console script of the virtualenv this process runs in (`cairn`, `aws`)."""
    path = BIN_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run scripts/setup")
    return str(path)


def clean_env() -> dict[str, str]:
    """This process's environment without settings that would change a server or a client."""
    prefixes = ("AWS_", "CAIRN_", "MINIO_", "BOTO_")
    return {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s3_client(endpoint: str, access_key: str, secret_key: str, verify: str | None = None, **config: Any) -> Any:
    """A boto3 S3 client (boto3 ships no types): path-style, SigV4, no retries; `verify` is a CA file for
    https; `config` adds or overrides botocore `Config` fields (`connect_timeout`, `read_timeout`, ...)."""
    settings: dict[str, Any] = {
        "region_name": REGION,
        "signature_version": "s3v4",
        "s3": {"addressing_style": "path"},
        "retries": {"max_attempts": 1, "mode": "standard"},
    }
    settings.update(config)
    return boto3.session.Session().client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                                          aws_secret_access_key=secret_key, config=Config(**settings),
                                          verify=verify)


def http_status(host: str, port: int, path: str, timeout: float = 2.0) -> int | None:
    """Status of a plain GET, or None if nothing answered."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def group_members(pgid: int) -> list[int]:
    """PIDs of the live processes in process group `pgid`; zombies do not count, whoever reaps them."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members
