"""The admin API (FastAPI), served on the S3 port under `/cairn/admin/v1/`.

Contract: every route requires a SigV4-signed request from the root user (the same signature
the S3 API checks; `cairn admin` signs with botocore). Routes report the node's state and run
operator actions; long actions (heal) stream newline-delimited JSON so a client can show
progress as it happens and a dropped connection stops the work.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse

from appliance.cluster.node import Node
from appliance.engine.drive import DiskInfo
from appliance.engine.errors import BucketNotFound, EngineError
from appliance.engine.healing import DRIVE_HEAL_MARKER, heal_tree, plan_heal
from appliance.engine.scanner import read_status
from appliance.s3 import sigv4
from appliance.s3.errors import S3Error

PREFIX = "/cairn/admin/v1"


def create_admin_app(
    node: Callable[[], Node], lookup_secret: Callable[[str], str | None], region: str, root_user: str
) -> FastAPI:
    api = FastAPI(title="Cairn admin API", version="1", docs_url=None, redoc_url=None, openapi_url=f"{PREFIX}/openapi.json")

    @api.exception_handler(EngineError)
    async def engine_error(request: Request, exc: EngineError) -> JSONResponse:
        # Quorum loss and the like: the operator needs the reason, not a bare 500.
        status = 404 if isinstance(exc, BucketNotFound) else 503
        return JSONResponse(status_code=status, content={"detail": f"{type(exc).__name__}: {exc}"})

    async def require_root(request: Request) -> str:
        headers = {k.lower(): v for k, v in request.headers.items()}
        raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?", 1)[0]
        try:
            auth = sigv4.authenticate(request.method, raw_path, request.url.query, headers, lookup_secret,
                                      region=region)
        except S3Error as exc:
            raise HTTPException(status_code=403, detail=f"{exc.code}: {exc.message}") from None
        if auth is None or auth.access_key != root_user:
            raise HTTPException(status_code=403, detail="admin requests must be signed by the root user")
        return auth.access_key

    @api.get(f"{PREFIX}/info")
    async def info(_: str = Depends(require_root)) -> dict[str, Any]:
        n = node()
        sets = []
        for eset in n.layer.sets:
            infos = await eset.disk_info()
            fresh = await eset.fanout(lambda d: d.sys_read(DRIVE_HEAL_MARKER))
            drives = []
            for drive, di, marker in zip(eset.drives, infos, fresh, strict=True):
                entry: dict[str, Any] = {"endpoint": drive.endpoint, "state": "online"}
                if isinstance(di, DiskInfo):
                    entry.update(total=di.total, free=di.free, used=di.used)
                else:
                    entry.update(state="offline", error=str(di))
                entry["healing"] = not isinstance(marker, BaseException)
                drives.append(entry)
            rq, wq = eset.quorums()
            sets.append({"index": eset.index, "read_quorum": rq, "write_quorum": wq, "drives": drives})
        return {"deployment_id": n.layer.deployment_id, "parity": n.parity, "sets": sets}

    @api.get(f"{PREFIX}/heal/status")
    async def heal_status(_: str = Depends(require_root)) -> dict[str, Any]:
        n = node()
        p = n.healer.progress
        loop = asyncio.get_running_loop()
        # Drive calls (remote ones wait for a hung peer's timeout) never run on the event loop.
        queued = sum([await loop.run_in_executor(n.executor, queue.count) for queue in n.queues])
        doc: dict[str, Any] = {
            "queued": queued,
            "objects_scanned": p.objects_scanned,
            "objects_healed": p.objects_healed,
            "objects_failed": p.objects_failed,
            "bytes_written": p.bytes_written,
        }
        # The worker that leads healing publishes the scanner's and healer's progress for all workers.
        published = read_status(n.lock_dir)
        if published is not None:
            for name, value in published["healer"].items():
                # This worker's own counters are fresher than what it published up to a second ago.
                if published.get("pid") != os.getpid() or name not in doc:
                    doc[name] = value
            doc["scanner"] = published["scanner"]
            doc["healing_drives"] = published["healing_drives"]
            doc["updated"] = published["updated"]
        return doc

    @api.post(f"{PREFIX}/heal")
    async def heal(bucket: str = "", prefix: str = "", _: str = Depends(require_root)) -> StreamingResponse:
        n = node()
        if bucket:
            await n.layer.head_bucket(bucket)
        buckets = await n.layer.bucket_configs(bucket or None)

        async def lines() -> AsyncIterator[bytes]:
            started = time.monotonic()
            plan = await plan_heal(n.layer.sets, buckets, prefix)
            totals = {"total": plan.total, "scanned": 0, "healed": 0, "purged": 0, "failed": 0, "bytes": 0}
            last = started
            yield (json.dumps({"type": "progress", **totals, "elapsed": 0.0}) + "\n").encode()
            async for result in heal_tree(plan, n.healer.workers):
                totals["scanned"] += 1
                totals["bytes"] += result.bytes_written
                if result.status in ("healed", "purged", "failed"):
                    totals[result.status] += 1
                    yield (json.dumps({"type": "object", "bucket": result.bucket, "key": result.key,
                                       "status": result.status, "drives": result.drives_healed,
                                       "bytes": result.bytes_written, "detail": result.detail}) + "\n").encode()
                now = time.monotonic()
                if now - last >= 0.5:
                    last = now
                    yield (json.dumps({"type": "progress", **totals, "elapsed": now - started}) + "\n").encode()
            yield (json.dumps({"type": "summary", **totals, "elapsed": time.monotonic() - started}) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return api
