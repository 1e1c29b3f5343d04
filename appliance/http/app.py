"""The ASGI adapter: bytes from uvicorn in, S3 responses out.

Contract: this module owns the I/O of a request and nothing of S3's semantics. For every HTTP
request it answers health probes and the admin API itself, and hands everything else through the
S3 pipeline: parse (router) -> authenticate (SigV4/V2) -> dispatch (handlers) -> respond. Any
exception becomes exactly one S3 error response (no body for HEAD); internal errors are logged
with the request id and never leak their text. Bodies stream in both directions: a request body
is read as the engine asks for it, and a response body is sent block by block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from appliance.admin.api import create_admin_app
from appliance.cluster.node import Internode, Node, join_cluster, open_internode, open_node
from appliance.config import ServerConfig
from appliance.engine.errors import ReadQuorumUnavailable, WriteQuorumUnavailable
from appliance.http import bucket_config
from appliance.http.context import RequestContext, Response
from appliance.http.handlers import dispatch
from appliance.s3 import endpoints, router, sigv4
from appliance.s3.errors import S3Error, error_body, from_exception

log = logging.getLogger("cairn.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HEALTH_PREFIX = "/minio/health/"
ADMIN_PREFIX = "/cairn/admin/"
RPC_PREFIX = "/cairn/rpc/"
SERVER_NAME = "Cairn"


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = out[name] + "," + value if name in out else value
    return out


class S3App:
    """The ASGI application of one worker process."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.node: Node | None = None
        self.internode: Internode | None = None
        self.not_ready = "the server is starting"  # why S3 requests get 503 while `node` is None
        self._tasks: list[asyncio.Task[None]] = []
        self._admin: Any = None
        self.credentials = {config.root_user: config.root_password}

    def _node(self) -> Node:
        assert self.node is not None
        return self.node

    def lookup_secret(self, access_key: str) -> str | None:
        return self.credentials.get(access_key)

    async def startup(self) -> None:
        """A single node opens at once; a cluster node serves its peers at once and joins in the background."""
        loop = asyncio.get_running_loop()
        self.internode = await loop.run_in_executor(None, open_internode, self.config)
        if self.internode is None:
            await self._start(await loop.run_in_executor(None, open_node, self.config))
        else:
            self.not_ready = "this node is joining its cluster: waiting for its peers"
            self._tasks.append(asyncio.create_task(self._join(self.internode)))

    async def _join(self, internode: Internode) -> None:
        try:
            node = await join_cluster(self.config, internode)
        except Exception as exc:
            self.not_ready = f"this node refused to join its cluster: {exc}"
            log.exception("could not join the cluster")
            return
        await self._start(node)

    async def _start(self, node: Node) -> None:
        asyncio.get_running_loop().set_default_executor(node.executor)
        await node.layer.spread_buckets()  # a pool added since the last start gets every bucket
        self.node = node
        if self.config.debug_disable_heal:
            log.warning("CAIRN_DEBUG_DISABLE_HEAL is set: background healing and scanning are OFF (test only)")
        else:
            self._tasks.append(asyncio.create_task(self.node.healer.run_forever()))
            self._tasks.append(asyncio.create_task(self.node.scanner.run_forever()))
        self._tasks.extend(asyncio.create_task(monitor.run_forever()) for monitor in self.node.monitors)
        self._tasks.append(asyncio.create_task(self.node.janitor.run_forever()))
        self._admin = create_admin_app(self._node, self.lookup_secret, self.config.region, self.config.root_user)
        log.info("worker %d ready", os.getpid())

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path.startswith(HEALTH_PREFIX):
                await self._health(path, scope, send)
            elif path.startswith(RPC_PREFIX) and self.internode is not None:
                await self.internode.server(scope, receive, send)
            elif path.startswith(ADMIN_PREFIX) and self._admin is not None and self.node is not None:
                await self._admin(scope, receive, send)
            else:
                await self._s3(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _health(self, path: str, scope: Scope, send: Send) -> None:
        status = 200
        if path.rstrip("/") != "/minio/health/live":
            status = 200 if await self._has_quorum(scope, path) else 503
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", b"0"), (b"server", SERVER_NAME.encode())]})
        await send({"type": "http.response.body", "body": b""})

    async def _has_quorum(self, scope: Scope, path: str) -> bool:
        """Ready: every set can serve reads; cluster: every set can take writes."""
        if self.node is None:
            return False
        for eset in self.node.layer.sets:
            infos = await eset.disk_info()
            online = sum(1 for i in infos if not isinstance(i, BaseException))
            rq, wq = eset.quorums()
            if online < (rq if path.rstrip("/").endswith("ready") or path.endswith("/read") else wq):
                return False
        return True

    async def _s3(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = uuid.uuid4().hex[:16].upper()
        headers = _headers(scope)
        method = scope["method"]
        raw_path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        raw_path = raw_path.split("?", 1)[0]
        query = scope["query_string"].decode("latin-1")
        ctx = RequestContext(
            app=self, method=method, raw_path=raw_path, query=query, headers=headers,
            receive=receive, request_id=request_id,
        )
        try:
            if self.node is None:
                raise S3Error("ServiceUnavailable", self.not_ready)
            ctx.layer = self.node.layer
            endpoint = router.parse(method, raw_path, query, headers, domains=self.config.domains)
            ctx.endpoint = endpoint
            # Browsers never sign preflights; a POST form upload carries its signature in the form.
            if not isinstance(endpoint, (endpoints.CorsPreflight, endpoints.PostObject)):
                auth = authenticate(ctx, self.config.region, self.lookup_secret)
                if auth is None:
                    raise S3Error("AccessDenied")
                ctx.auth = auth
            response = await dispatch(ctx, endpoint)
        except Exception as exc:
            response = self._error_response(ctx, exc)
            response.headers.extend(await bucket_config.error_cors_headers(ctx))
        if not ctx.body_consumed and ctx.may_have_body():
            # The request body was never read (an early error): the bytes still in flight would be
            # parsed as the next request on this connection, so close it after the response.
            response.headers.append(("connection", "close"))
        await self._send(ctx, response, send)

    def _error_response(self, ctx: RequestContext, exc: BaseException) -> Response:
        err = from_exception(exc)
        if err.code == "InternalError" and not isinstance(exc, S3Error):
            log.error("request %s %s failed", ctx.request_id, ctx.method, exc_info=exc)
        elif isinstance(exc, (ReadQuorumUnavailable, WriteQuorumUnavailable)):
            log.warning("request %s: %s", ctx.request_id, exc)
        resource = ctx.raw_path
        body = b"" if ctx.method == "HEAD" else error_body(err, resource=resource, request_id=ctx.request_id)
        headers = [("content-type", "application/xml")]
        if err.code == "NotModified":
            body = b""
        if err.status == 503:
            headers.append(("retry-after", "1"))
        return Response(err.status, headers, body)

    async def _send(self, ctx: RequestContext, response: Response, send: Send) -> None:
        headers = [
            (b"server", SERVER_NAME.encode()),
            (b"x-amz-request-id", ctx.request_id.encode()),
            (b"x-amz-id-2", ctx.request_id.encode()),
        ]
        body = response.body
        has_length = any(name == "content-length" for name, _ in response.headers)
        if isinstance(body, bytes) and not has_length:
            headers.append((b"content-length", str(len(body)).encode()))
        headers.extend((name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers)
        if isinstance(body, bytes):
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if ctx.method == "HEAD" else body})
            return
        await self._send_stream(ctx, response.status, headers, body, send)

    async def _send_stream(
        self, ctx: RequestContext, status: int, headers: list[tuple[bytes, bytes]], body: AsyncIterator[bytes],
        send: Send,
    ) -> None:
        # Pull the first chunk before the status line, so a read that fails at once still gets a
        # proper S3 error instead of a truncated 200.
        iterator = body.__aiter__()
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            first = b""
            iterator = None  # type: ignore[assignment]
        except Exception as exc:
            await self._send(ctx, self._error_response(ctx, exc), send)
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        try:
            if iterator is None:
                await send({"type": "http.response.body", "body": first})
                return
            await send({"type": "http.response.body", "body": first, "more_body": True})
            async for chunk in iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except Exception:
            # Headers are gone: the only honest signal left is to cut the connection short of its
            # Content-Length, so the client sees a failed transfer, never a short "success".
            log.exception("request %s: body stream failed after the headers were sent", ctx.request_id)
            raise


def authenticate(
    ctx: RequestContext, region: str, lookup_secret: Callable[[str], str | None]
) -> sigv4.AuthResult | None:
    """SigV4 or SigV2, header or query; None for an anonymous request."""
    bucket = getattr(ctx.endpoint, "bucket", None) or None
    vhost_bucket = bucket if bucket and not ctx.raw_path.startswith("/" + bucket) else None
    return sigv4.authenticate(ctx.method, ctx.raw_path, ctx.query, ctx.headers, lookup_secret, region=region,
                              vhost_bucket=vhost_bucket)


def create_app() -> S3App:
    """uvicorn factory: every worker process builds its app from the configuration in its environment."""
    config = ServerConfig.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return S3App(config)
