"""The internode RPC wire format, shared by the client (`PeerClient`) and the server (`rpc_server.py`).

Contract: every RPC is `POST /cairn/rpc/v1/<service>/<method>` carrying `x-cairn-rpc-auth`, which is
`<unix seconds>:<hex HMAC-SHA256 over "<http method>\\n<path>\\n<seconds>">` under a key derived from
the root credentials; the server accepts it within +-15 minutes of its own clock and compares in
constant time. Arguments travel as a msgpack map in the body, or (for a raw-bytes body such as a
shard append) msgpack + base64 in the `x-cairn-rpc-args` header. A success is 200 with a msgpack
body (raw bytes for reads); a failure is 500 with msgpack `{"error": <class name>, "message": ...}`
that the client turns back into the same `appliance.engine.errors` class, so a remote drive fails
exactly like a local one.

`PeerClient` is one peer node as the engine sees it: a thread-safe, pooled, synchronous client.
After a connection failure it marks the peer offline, and every later call fails at once with
`DriveOffline` until a health probe (lazily at most every 2 s, or an explicit `probe()`) succeeds,
so a dead node costs the engine nothing but the first timeout. Neither the key nor the auth header
ever appears in a log line or an exception message. With `https://` peers the client verifies each
peer's certificate and hostname against `peer_tls_context` (the system CAs, the node's CAs/*.crt and
its own public.crt); a peer it cannot verify is offline, exactly like one it cannot reach.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import ssl
import threading
import time
from typing import Any

import msgpack
import urllib3
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import ProtocolError
from urllib3.exceptions import SSLError as TlsError

from appliance.config import trusted_cert_files
from appliance.engine import errors as engine_errors
from appliance.engine.errors import DriveOffline, EngineError

log = logging.getLogger(__name__)

PREFIX = "/cairn/rpc/v1/"
AUTH_HEADER = "x-cairn-rpc-auth"
ARGS_HEADER = "x-cairn-rpc-args"
CONTENT_TYPE = "application/msgpack"
MAX_SKEW = 15 * 60
PROBE_INTERVAL = 2.0
_KEY_LABEL = b"cairn-internode-v1"

# Every engine error a drive call can raise on purpose. Each takes one message argument, so the
# client rebuilds it as `cls(message)`; unknown names (a newer peer, a bug) become DriveOffline.
WIRE_ERRORS: dict[str, type[EngineError]] = {
    cls.__name__: cls
    for cls in (
        engine_errors.DriveError,
        engine_errors.DriveOffline,
        engine_errors.DriveFull,
        engine_errors.DriveReadOnly,
        engine_errors.FileNotFoundOnDrive,
        engine_errors.VolumeNotFound,
        engine_errors.FileCorrupt,
        engine_errors.UnformattedDrive,
        engine_errors.ForeignDrive,
        engine_errors.VolumeExists,
        # Raised by a LocalDrive for keys it cannot store (they are not drive failures).
        engine_errors.InvalidObjectName,
        engine_errors.KeyTooLong,
    )
}


class UnknownMethod(Exception):
    """A service was asked for a method it does not serve (the server answers 404)."""


class RpcAuthRejected(DriveOffline):
    """The peer refused our credentials: the nodes were started with different root credentials."""


def derive_key(root_user: str, root_password: str) -> bytes:
    """The internode key: HMAC-SHA256 under a fixed label, so it is never the password itself."""
    material = root_user.encode() + b"\0" + root_password.encode()
    return hmac.new(_KEY_LABEL, material, hashlib.sha256).digest()


def _signature(key: bytes, method: str, path: str, timestamp: str) -> str:
    return hmac.new(key, f"{method.upper()}\n{path}\n{timestamp}".encode(), hashlib.sha256).hexdigest()


def make_auth(key: bytes, method: str, path: str, now: float | None = None) -> str:
    """The `x-cairn-rpc-auth` value for one request."""
    timestamp = str(int(time.time() if now is None else now))
    return f"{timestamp}:{_signature(key, method, path, timestamp)}"


def check_auth(key: bytes, method: str, path: str, header: str | None, now: float | None = None) -> bool:
    """Whether `header` was made with `key` for this method and path, within the allowed clock skew."""
    if not header:
        return False
    timestamp, sep, mac = header.partition(":")
    if not sep or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > MAX_SKEW:
        return False
    return hmac.compare_digest(mac.encode(), _signature(key, method, path, timestamp).encode())


# --- msgpack ---------------------------------------------------------------------------------


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


def pack_header_args(args: dict[str, Any]) -> str:
    return base64.b64encode(pack(args)).decode("ascii")


def unpack_header_args(value: str) -> dict[str, Any]:
    args = unpack(base64.b64decode(value, validate=True))
    if not isinstance(args, dict):
        raise ValueError("rpc arguments are not a map")
    return args


# --- errors ------------------------------------------------------------------------------------


def encode_error(exc: BaseException) -> bytes:
    """The 500 body for an exception; classes outside `WIRE_ERRORS` keep their name for the log."""
    return pack({"error": type(exc).__name__, "message": str(exc)})


def decode_error(body: bytes) -> EngineError:
    """The exception a 500 body stands for."""
    try:
        payload = unpack(body)
        name, message = str(payload["error"]), str(payload["message"])
    except Exception:
        return DriveOffline("peer sent an unreadable error")
    cls = WIRE_ERRORS.get(name)
    if cls is None:
        return DriveOffline(f"peer failed: {name}: {message}")
    return cls(message)


# --- client ------------------------------------------------------------------------------------


def peer_tls_context(certs_dir: str) -> ssl.SSLContext:
    """How a node verifies its peers: the system CAs, plus `trusted_cert_files(certs_dir)`.

    Hostnames are checked. A partial chain is accepted so that the node's own public.crt (often one
    certificate naming every node) is a trust anchor even when its issuer is not at hand."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    for path in trusted_cert_files(certs_dir):
        context.load_verify_locations(cafile=path)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


class PeerClient:
    """One peer node: pooled HTTP connections shared by all the RemoteDrives on that node.

    `ssl_context` verifies an `https://` peer (default: the system CAs only)."""

    def __init__(self, base_url: str, key: bytes, *, connect_timeout: float = 2.0, read_timeout: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._probe_timeout = urllib3.Timeout(connect=connect_timeout, read=min(read_timeout, PROBE_INTERVAL))
        tls: dict[str, Any] = {"ssl_context": ssl_context} if ssl_context and self.base_url.startswith("https:") else {}
        self._pool = urllib3.connection_from_url(self.base_url, maxsize=64, block=False, retries=False, **tls)
        self._state = threading.Lock()
        self._probing = threading.Lock()
        self._online = True
        self._last_probe = 0.0

    def __repr__(self) -> str:
        return f"PeerClient({self.base_url!r})"

    @property
    def online(self) -> bool:
        return self._online

    def close(self) -> None:
        self._pool.close()

    def call(self, service: str, method: str, args: dict[str, Any], body: bytes | None = None,
             raw_response: bool = False) -> Any:
        """Run one RPC; return its decoded result (raw bytes with `raw_response`) or raise its error.

        `body` given: it is sent raw and `args` travel in a header. A transport failure marks the
        peer offline; so does any call made while it is offline, without touching the network."""
        if not self._online and not self._maybe_probe():
            raise DriveOffline(f"{self.base_url} is offline")
        try:
            status, data = self._send(service, method, args, body, self._timeout)
        except ProtocolError as exc:
            # The peer dropped the connection mid-call: a crash, or a pooled connection closed by its
            # keep-alive timeout. This call's outcome is unknown either way; whether the peer is down
            # is what one immediate probe decides.
            self._mark_offline()
            self._maybe_probe(force=True)
            raise DriveOffline(f"{self.base_url}: connection lost during {service}/{method}") from exc
        except TlsError as exc:
            self._mark_offline(f" (TLS: {exc})")
            raise DriveOffline(f"{self.base_url}: {service}/{method} failed: cannot verify the peer: {exc}") from exc
        except TransportError as exc:
            self._mark_offline()
            raise DriveOffline(f"{self.base_url}: {service}/{method} failed: {type(exc).__name__}") from exc
        if status == 200:
            return data if raw_response else unpack(data) if data else None
        if status == 500:
            raise decode_error(data)
        if status == 401:
            raise RpcAuthRejected(f"{self.base_url} refused our credentials (root credentials differ?)")
        if status == 404:
            raise DriveOffline(f"{self.base_url} does not serve {service}/{method} (version mismatch?)")
        raise DriveOffline(f"{self.base_url} answered {status} to {service}/{method}")

    def probe(self) -> bool:
        """Ask the peer whether it serves RPC now; update and return `online`."""
        return self._maybe_probe(force=True)

    def _maybe_probe(self, force: bool = False) -> bool:
        """Probe if forced or the last probe is old enough; one thread probes, the others do not wait."""
        with self._state:
            if not force and time.monotonic() - self._last_probe < PROBE_INTERVAL:
                return self._online
        if not self._probing.acquire(blocking=force):
            return self._online
        try:
            reason = ""
            try:
                status, _ = self._send("node", "health", {}, None, self._probe_timeout)
                healthy = status == 200
            except TlsError as exc:
                healthy, reason = False, f" (TLS: {exc})"
            except TransportError:
                healthy = False
            with self._state:
                self._last_probe = time.monotonic()
                if healthy != self._online:
                    log.warning("peer %s is %s%s", self.base_url, "back online" if healthy else "offline", reason)
                self._online = healthy
            return healthy
        finally:
            self._probing.release()

    def _mark_offline(self, reason: str = "") -> None:
        with self._state:
            if self._online:
                log.warning("peer %s is offline%s", self.base_url, reason)
            self._online = False
            self._last_probe = time.monotonic()

    def _send(self, service: str, method: str, args: dict[str, Any], body: bytes | None,
              timeout: urllib3.Timeout) -> tuple[int, bytes]:
        path = f"{PREFIX}{service}/{method}"
        headers = {AUTH_HEADER: make_auth(self._key, "POST", path), "content-type": CONTENT_TYPE}
        if body is None:
            payload = pack(args)
        else:
            payload = body
            headers[ARGS_HEADER] = pack_header_args(args)
            headers["content-type"] = "application/octet-stream"
        response = self._pool.urlopen("POST", path, body=payload, headers=headers, timeout=timeout,
                                      retries=False, redirect=False, assert_same_host=False)
        return response.status, response.data
