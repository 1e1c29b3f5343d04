"""The real-server harness: start `cairn server` as a subprocess and talk to it with real clients.

Contract: `start_server` returns a `CairnServer` that is serving (its /minio/health/ready answered
200) on a free loopback port, with its drives in folders under the given tmp path and its output in
a log file there. Each server runs in its own process group, so `kill()` and `stop()` reach its
worker processes too and never anything else. A server is stopped at interpreter exit if a test
forgot to. `run_aws` runs the real AWS CLI against a server with an isolated configuration, so the
host's ~/.aws never leaks in. `wait_until` is the only way tests wait: for a condition, never for
a fixed time. The process and HTTP helpers and `wait_until` are the simulator's own
(`simulator.process`, `simulator.waiting`), shared with the network-namespace lab.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import signal
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from simulator.process import (
    BIN_DIR,
    REGION,
    clean_env,
    free_port,
    group_members,
    http_status,
    s3_client,
    tool,
)
from simulator.waiting import wait_until

__all__ = ["BIN_DIR", "REGION", "READY_TIMEOUT", "ROOT_PASSWORD", "ROOT_USER", "STOP_TIMEOUT", "CairnServer",
           "S3Client", "ServerError", "free_port", "fresh_bucket_name", "run_aws", "run_cairn", "start_server",
           "wait_until"]

# boto3 ships no type information; its clients are dynamic objects.
S3Client = Any

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
ROOT_USER = "cairn-test-root"
ROOT_PASSWORD = "cairn-test-root-secret"

_live_servers: set[CairnServer] = set()


class ServerError(AssertionError):
    """The server did not start, did not become ready, or did not stop as asked."""


def fresh_bucket_name(prefix: str = "t") -> str:
    """A valid bucket name that no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class CairnServer:
    """One `cairn server` process (and its workers) on loopback, started by `start_server`."""

    def __init__(self, root: Path, drives: list[Path], workers: int, parity: int | None,
                 extra_args: Iterable[str], env: Mapping[str, str] | None, ca: Path | None = None) -> None:
        self.root = root
        self.ca = ca  # set: the server speaks HTTPS with a certificate issued by this CA file
        self.drives = drives
        self.workers = workers
        self.parity = parity
        self.extra_args = tuple(extra_args)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.console_port = free_port()
        self.access_key = ROOT_USER
        self.secret_key = ROOT_PASSWORD
        self.log_path = root / "server.log"
        self.aws_config_path = root / "aws-config"
        self.aws_credentials_path = root / "aws-credentials"
        self.env = clean_env()
        self.env.update({
            "CAIRN_ROOT_USER": self.access_key,
            "CAIRN_ROOT_PASSWORD": self.secret_key,
            "PYTHONUNBUFFERED": "1",
        })
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.ca else 'http'}://{self.host}:{self.port}"

    def command(self) -> list[str]:
        args = [tool("cairn"), "server",
                "--address", f"{self.host}:{self.port}",
                "--console-address", f"{self.host}:{self.console_port}",
                "--workers", str(self.workers)]
        if self.parity is not None:
            args += ["--parity", str(self.parity)]
        return args + list(self.extra_args) + [str(drive) for drive in self.drives]

    def start(self) -> None:
        """Start the process and wait until it is ready; fail with its log if it is not."""
        if self.running():
            raise ServerError("server is already running")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(), cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _live_servers.add(self)
        self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            process = self.process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise ServerError(f"cairn server exited with {code} before it was ready\n{self.log_tail()}")
            if self._ready_status() == 200:
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise ServerError(f"cairn server not ready within {timeout:g} s\n{self.log_tail()}")
            time.sleep(0.05)

    def _ready_status(self) -> int | None:
        if self.ca is None:
            return http_status(self.host, self.port, "/minio/health/ready")
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=2.0,
                                           context=ssl.create_default_context(cafile=str(self.ca)))
        try:
            conn.request("GET", "/minio/health/ready")
            return conn.getresponse().status
        except OSError:
            return None
        finally:
            conn.close()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _group_alive(self) -> bool:
        """True while any live (non-zombie) process is in the server's process group."""
        return self.process is not None and bool(group_members(self.process.pid))

    def kill(self) -> None:
        """SIGKILL the server and its workers at once (its own process group), as a crash would."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        wait_until(lambda: not self._group_alive(), 10, message="killed server's process group to vanish")
        _live_servers.discard(self)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM the server and wait for it and its workers to exit; return its exit code.

        A server that does not exit in time, or leaves workers behind, is killed and the test fails.
        """
        process = self.process
        if process is None:
            raise ServerError("server was never started")
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise ServerError(f"cairn server ignored SIGTERM for {timeout:g} s\n{self.log_tail()}") from None
        try:
            wait_until(lambda: not self._group_alive(), 10)
        except TimeoutError:
            self.kill()
            raise ServerError(f"cairn server exited but left worker processes running\n{self.log_tail()}") from None
        _live_servers.discard(self)
        return int(process.returncode)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port and drives."""
        if self.running():
            self.stop()
        self.start()

    def __enter__(self) -> CairnServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Fixture teardown: stop gracefully, or kill if that fails; never raises for a dead server."""
        if self.process is None:
            return
        try:
            self.stop()
        finally:
            self.kill()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def client(self, access_key: str | None = None, secret_key: str | None = None, **config: Any) -> S3Client:
        """A boto3 S3 client for this server: path-style, SigV4, no retries, bounded timeouts.

        `config` overrides botocore `Config` fields (e.g. `s3={"payload_signing_enabled": False}`).
        """
        return s3_client(self.endpoint, access_key if access_key is not None else self.access_key,
                         secret_key if secret_key is not None else self.secret_key,
                         verify=str(self.ca) if self.ca else None,
                         **{"connect_timeout": 5, "read_timeout": 60, "max_pool_connections": 16, **config})

    def anonymous_client(self) -> S3Client:
        """A boto3 S3 client that sends no credentials at all."""
        from botocore import UNSIGNED

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"},
                          retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60),
        )

    def admin_env(self) -> dict[str, str]:
        """Environment for `cairn admin` commands against this server."""
        env = clean_env()
        env.update({"CAIRN_ACCESS_KEY": self.access_key, "CAIRN_SECRET_KEY": self.secret_key})
        if self.ca:
            env["CAIRN_CA"] = str(self.ca)
        return env

    def __repr__(self) -> str:
        return f"CairnServer({self.endpoint}, drives={len(self.drives)}, workers={self.workers})"


def start_server(tmp_path: Path, drives: int = 4, workers: int = 1, parity: int | None = None,
                 extra_args: Iterable[str] = (), env: Mapping[str, str] | None = None,
                 ca: Path | None = None) -> CairnServer:
    """Start `cairn server` on `drives` fresh folders under `tmp_path` and wait until it is ready.

    `ca`: the server serves HTTPS (pass `--certs-dir` in `extra_args`) with a certificate this CA
    file verifies; the endpoint, the clients and `cairn admin` use https:// and trust it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    drive_paths = [tmp_path / f"drive{i}" for i in range(1, drives + 1)]
    for path in drive_paths:
        path.mkdir(exist_ok=True)
    server = CairnServer(tmp_path, drive_paths, workers, parity, extra_args, env, ca)
    server.start()
    return server


def run_cairn(server: CairnServer, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `cairn ARGS...` with the server's admin credentials; never raises for a non-zero exit."""
    return subprocess.run([tool("cairn"), *args], env=server.admin_env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def run_aws(server: CairnServer, *args: str, check: bool = True, timeout: float = 600,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real AWS CLI (`aws ARGS...`) against `server`.

    Its config and credentials files are the server's own (absent until `aws configure set`
    writes one), the credentials come from the environment, and retries are off. With `check`, a
    non-zero exit fails the test with the command's output.
    """
    env = clean_env()
    env.update({
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(server.aws_config_path),
        "AWS_SHARED_CREDENTIALS_FILE": str(server.aws_credentials_path),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "AWS_PAGER": "",
    })
    command = [tool("aws"), *args]
    if args and args[0] != "configure":
        command[1:1] = ["--endpoint-url", server.endpoint]
    return run_client(command, env, check=check, timeout=timeout, cwd=cwd)


def run_client(command: list[str], env: Mapping[str, str], *, check: bool = True, timeout: float = 300,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a client tool to completion; with `check`, a non-zero exit fails the test with its output."""
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


@atexit.register
def _kill_leftover_servers() -> None:
    for server in list(_live_servers):
        server.kill()
