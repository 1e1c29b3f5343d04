"""PeerClient over https: it verifies the peer's certificate and hostname, and a peer it cannot
verify is offline (DriveOffline), like one it cannot reach.

A module-wide `uvicorn --factory tests.rpc_app:create_app` serves TLS with a certificate for
127.0.0.1 only, issued by a throwaway CA. Each row gives the client a different trust: the node's
certificates folder laid out as `cairn server --certs-dir` reads it, or the system CAs alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.cluster.rpc import PeerClient, derive_key, peer_tls_context
from appliance.engine.errors import DriveOffline
from tests.harness import free_port, wait_until
from tests.tls import CertificateAuthority

ROOT_USER = "rpc-tls-root"
ROOT_PASSWORD = "rpc-tls-secret"
KEY = derive_key(ROOT_USER, ROOT_PASSWORD)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Path]]:
    """(port, the server's certificates folder, a folder of the same shape from an unrelated CA)."""
    root = tmp_path_factory.mktemp("rpc-tls")
    certs = CertificateAuthority().certs_dir(root / "certs", hosts=("127.0.0.1",))
    foreign = CertificateAuthority("Someone else's CA").certs_dir(root / "foreign", hosts=("127.0.0.1",))
    (root / "drive").mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "MINIO_"))}
    env.update(CAIRN_ROOT_USER=ROOT_USER, CAIRN_ROOT_PASSWORD=ROOT_PASSWORD,
               CAIRN_TEST_RPC_DRIVES=str(root / "drive"))
    command = [str(Path(sys.executable).parent / "uvicorn"), "--factory", "tests.rpc_app:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--lifespan", "off",
               "--log-level", "warning", "--ssl-certfile", str(certs / "public.crt"),
               "--ssl-keyfile", str(certs / "private.key")]
    with open(root / "rpc.log", "ab") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        probe = PeerClient(f"https://127.0.0.1:{port}", KEY, ssl_context=peer_tls_context(str(certs)))
        wait_until(probe.probe, 30, interval=0.1, message=f"TLS rpc server ready; log {root / 'rpc.log'}")
        probe.close()
        yield port, certs, foreign
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _own_certificate_only(certs: Path, tmp_path: Path) -> Path:
    """The node's own public.crt and nothing else: trusted as is (one certificate for every node)."""
    shutil.copy(certs / "public.crt", tmp_path / "public.crt")
    return tmp_path


TRUST = {
    "issuing CA in CAs/": lambda certs, foreign, tmp: certs,
    "own public.crt only": lambda certs, foreign, tmp: _own_certificate_only(certs, tmp),
    "unrelated CA": lambda certs, foreign, tmp: foreign,
}


@pytest.mark.parametrize(("trust", "host", "verified"), [
    ("issuing CA in CAs/", "127.0.0.1", True),
    ("own public.crt only", "127.0.0.1", True),
    ("unrelated CA", "127.0.0.1", False),
    ("issuing CA in CAs/", "localhost", False),  # the certificate names 127.0.0.1 only
    ("system CAs only", "127.0.0.1", False),
])
def test_peer_client_verifies_the_peer(tls_node: tuple[int, Path, Path], tmp_path: Path,
                                       trust: str, host: str, verified: bool) -> None:
    port, certs, foreign = tls_node
    context = peer_tls_context(str(TRUST[trust](certs, foreign, tmp_path))) if trust in TRUST else None
    peer = PeerClient(f"https://{host}:{port}", KEY, ssl_context=context)
    try:
        if verified:
            assert peer.call("lock", "echo", {"over": "tls"}) == {"method": "echo", "args": {"over": "tls"}}
            assert peer.probe() and peer.online
        else:
            with pytest.raises(DriveOffline, match="cannot verify the peer"):
                peer.call("lock", "echo", {})
            assert not peer.online and not peer.probe()
    finally:
        peer.close()
