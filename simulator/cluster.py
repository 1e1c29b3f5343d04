"""The simulated cluster: drives the simulator made, and the real `cairn server` it started on them.

Contract: `Cluster.create()` builds the drives and starts the server (one node, one worker, on
loopback) and waits until it is ready. Every process it starts is recorded in `pids`; node faults
(SIGKILL, SIGSTOP/SIGCONT) and `destroy()` signal only those, by PID or by the process group of
the server it started. The cluster gives S3 clients (boto3, short timeouts, no retries), the
admin heal status, `cairn admin heal` as an operator runs it, and a deep on-disk check that every
acknowledged object has an intact copy on every drive (the engine's own `shards_intact`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from appliance.engine.drive import LocalDrive
from appliance.engine.erasure_set import decode_metas
from appliance.engine.healing import shards_intact
from appliance.engine.metadata import ObjectMeta
from simulator.drives import IMAGE_MB, SimDrive
from simulator.process import REGION, clean_env, free_port, group_members, http_status, s3_client, tool
from simulator.waiting import poll_until, wait_until

ROOT_USER = "cairn-sim-root"
ROOT_PASSWORD = "cairn-sim-root-secret"
BUCKET = "sim"


class Cluster:
    def __init__(self, workdir: Path, drives: int, parity: int, fuse_slots: Iterable[int] = (),
                 disable_heal: bool = False, scan_interval: float = 2.0, heal_throttle: float = 0.0,
                 size_mb: int = IMAGE_MB, heal_workers: int | None = None) -> None:
        self.workdir = workdir
        self.parity = parity
        self.pids: set[int] = set()
        fuse = set(fuse_slots)
        self.drives = [SimDrive(workdir, i, self.pids, fuse=i in fuse, size_mb=size_mb) for i in range(drives)]
        self.disable_heal = disable_heal
        self.scan_interval = scan_interval
        self.heal_throttle = heal_throttle
        self.heal_workers = heal_workers  # None: the server's default
        self.port = free_port()
        self.console_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.stopped = False  # SIGSTOPped
        self.log_path = workdir / "server.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = clean_env()
        env.update(CAIRN_ROOT_USER=ROOT_USER, CAIRN_ROOT_PASSWORD=ROOT_PASSWORD, PYTHONUNBUFFERED="1")
        if self.disable_heal:
            env["CAIRN_DEBUG_DISABLE_HEAL"] = "1"
        return env

    # --- lifecycle --------------------------------------------------------------------------------

    def create(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for drive in self.drives:
            drive.create()
        self.start()
        self.client().create_bucket(Bucket=BUCKET)

    def start(self) -> None:
        args = [tool("cairn"), "server", "--address", f"127.0.0.1:{self.port}",
                "--console-address", f"127.0.0.1:{self.console_port}", "--workers", "1",
                "--parity", str(self.parity), "--lock-dir", str(self.workdir / "locks"),
                "--scan-interval", str(self.scan_interval), "--heal-throttle", str(self.heal_throttle),
                *(["--heal-workers", str(self.heal_workers)] if self.heal_workers else []),
                *[str(d.path) for d in self.drives]]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        self.pids.add(self.process.pid)
        self.stopped = False
        wait_until(self._ready, 60, 0.1, f"cairn server on {self.endpoint} to be ready (log: {self.log_path})")

    def _ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"cairn server exited early; see {self.log_path}:\n{self.log_tail()}")
        return http_status("127.0.0.1", self.port, "/minio/health/ready") == 200

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the server and its workers (the process group it leads, which we started)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        self.stopped = sig == signal.SIGSTOP

    def kill(self) -> None:
        if self.process is None:
            return
        if self.stopped:
            self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        self.process.wait()
        self.pids.discard(self.process.pid)
        # Workers die with the group; wait until none is left before the drives are touched.
        pgid = self.process.pid
        poll_until(lambda: not group_members(pgid), 10, 0.05)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if self.stopped:
            self.signal(signal.SIGCONT)
        self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(20)
        self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            for drive in self.drives:
                drive.destroy()

    # --- clients ----------------------------------------------------------------------------------

    def client(self, timeout: float = 20.0) -> Any:
        return s3_client(self.endpoint, ROOT_USER, ROOT_PASSWORD, connect_timeout=3, read_timeout=timeout,
                         max_pool_connections=16)

    def heal_status(self) -> dict[str, Any] | None:
        return heal_status("127.0.0.1", self.port)

    def admin_heal(self) -> HealSummary:
        return admin_heal(self.endpoint)

    # --- the on-disk truth ------------------------------------------------------------------------

    def missing_copies(self, keys: Iterable[str], slots: Iterable[int] | None = None) -> list[str]:
        """Every (drive, key) whose copy is absent or does not verify, as readable lines."""
        problems = []
        chosen = range(len(self.drives)) if slots is None else slots
        key_list = list(keys)
        for slot in chosen:
            drive = LocalDrive(str(self.drives[slot].mnt))
            for key in key_list:
                problem = copy_problem(drive, key)
                if problem:
                    problems.append(f"drive {slot}: {key}: {problem}")
        return problems


@dataclass
class HealSummary:
    """What one `cairn admin heal` run did: counts, exit code, key -> "healed" | "purged", and failures."""

    healed: int
    purged: int
    failed: int
    scanned: int
    exit: int
    worked: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # "bucket/key: why", as the command printed them

    def __str__(self) -> str:
        return (f"healed {self.healed}, purged {self.purged}, failed {self.failed} of {self.scanned} objects, "
                f"exit {self.exit}" + (f" (first failure: {self.failures[0]})" if self.failures else ""))


def copy_problem(drive: LocalDrive, key: str) -> str:
    """What is wrong with `key`'s copy on `drive` ("" when its metadata and every shard verify)."""
    try:
        raw = drive.read_meta(BUCKET, key)
    except Exception as exc:
        return f"no metadata ({type(exc).__name__})"
    meta = decode_metas([raw])[0]
    if not isinstance(meta, ObjectMeta):
        return "corrupt metadata"
    for v in meta.versions:
        if v.erasure is not None and not v.deleted and not shards_intact(drive, BUCKET, key, v):
            return "shard missing or failing its hash"
    return ""


def heal_status(host: str, port: int) -> dict[str, Any] | None:
    """GET /cairn/admin/v1/heal/status of one server, signed as root; None if it does not answer."""
    path = "/cairn/admin/v1/heal/status"
    request = AWSRequest(method="GET", url=f"http://{host}:{port}{path}", data=b"")
    S3SigV4Auth(Credentials(ROOT_USER, ROOT_PASSWORD), "s3", REGION).add_auth(request)
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path, headers=dict(request.headers.items()))
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        doc: dict[str, Any] = json.loads(body)
        return doc
    except (OSError, ValueError):
        return None
    finally:
        conn.close()


def admin_heal(endpoint: str) -> HealSummary:
    """Run `cairn admin heal -v` against `endpoint` as an operator would: its counts, exit code, and the
    keys it healed or purged."""
    env = clean_env()
    env.update(CAIRN_ACCESS_KEY=ROOT_USER, CAIRN_SECRET_KEY=ROOT_PASSWORD)
    done = subprocess.run([tool("cairn"), "admin", "heal", "--verbose", "--endpoint", endpoint], env=env,
                          capture_output=True, text=True, timeout=600)
    match = re.search(r"healed (\d+), purged (\d+), failed (\d+) of (\d+) objects", done.stdout)
    if match is None:
        raise RuntimeError(f"`cairn admin heal` gave no summary ({done.returncode}): {done.stderr.strip()}")
    healed, purged, failed, scanned = (int(g) for g in match.groups())
    lines = re.finditer(rf"^(HEALED|PURGED) {re.escape(BUCKET)}/(.+)$", done.stdout, re.M)
    worked = {m.group(2): m.group(1).lower() for m in lines}
    failures = [line.removeprefix("FAILED ") for line in done.stderr.splitlines() if line.startswith("FAILED ")]
    return HealSummary(healed, purged, failed, scanned, done.returncode, worked, failures)
