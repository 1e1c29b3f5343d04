"""The bucket and object pages: list, create and delete buckets; browse a bucket by folder, page
through it, upload, download, inspect and delete objects.

Contract: folders are S3 common prefixes under the delimiter "/", pages follow S3 continuation
tokens, so a bucket of any size lists in bounded time and memory. The upload route checks the
session before it reads its body; the form parser spools each file to a temporary file (never
held whole in memory), then boto3's managed transfer sends it (see `node.UPLOAD_TRANSFER`).
Downloads stream through block by block. A download is always an
attachment in a sandbox: stored content never runs as a console page.
"""

from __future__ import annotations

import posixpath
import urllib.parse
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from appliance.console.node import UPLOAD_TRANSFER, node_errors
from appliance.console.render import bucket_path, url
from appliance.console.web import Console, Csrf, User, reported, see_other

PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
DOWNLOAD_BLOCK = 256 * 1024
# S3 allows 1000 keys per DeleteObjects request.
DELETE_BATCH = 1000


def parent_prefix(key: str) -> str:
    """"a/b/c.txt" -> "a/b/"; "a/b/" -> "a/"; "c" -> ""."""
    head = key.rstrip("/").rpartition("/")[0]
    return head + "/" if head else ""


def crumbs(prefix: str) -> list[tuple[str, str]]:
    """"a/b/" -> [("a", "a/"), ("b", "a/b/")]: the folders above a listing, each with its prefix."""
    out = []
    at = ""
    for part in prefix.split("/")[:-1]:
        at += part + "/"
        out.append((part, at))
    return out


def attachment(key: str) -> str:
    """A Content-Disposition naming the key's last part, ASCII-safe with the UTF-8 name beside it."""
    name = posixpath.basename(key.rstrip("/")) or "download"
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


def upload_key(prefix: str, filename: str) -> str:
    """Where an uploaded file goes: the current folder plus the file's own name (some browsers send
    a whole client path; only its last part is the name)."""
    return prefix + filename.replace("\\", "/").rsplit("/", 1)[-1]


def browser_routes(console: Console) -> APIRouter:
    router = APIRouter()

    @router.get("/buckets")
    def buckets(session: User) -> HTMLResponse:
        with node_errors():
            listing = session.s3.list_buckets().get("Buckets", [])
        return console.page(session, "buckets.html", title="Buckets", buckets=listing)

    @router.post("/buckets")
    def create_bucket(session: User, csrf: Csrf = "", name: Annotated[str, Form()] = "") -> Response:
        console.check_csrf(session, csrf)
        name = name.strip()
        args: dict[str, Any] = {"Bucket": name}
        if console.node.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": console.node.region}
        with reported(session):
            session.s3.create_bucket(**args)
            session.flash("ok", f"Created bucket {name}.")
        return see_other("/buckets")

    @router.post("/buckets/{bucket}/delete")
    def delete_bucket(session: User, bucket: str, csrf: Csrf = "") -> Response:
        console.check_csrf(session, csrf)
        with reported(session):
            session.s3.delete_bucket(Bucket=bucket)
            session.flash("ok", f"Deleted bucket {bucket}.")
        return see_other("/buckets")

    @router.get("/buckets/{bucket}")
    def browse(
        session: User,
        bucket: str,
        prefix: str = "",
        token: str = "",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = PAGE_SIZE,
    ) -> HTMLResponse:
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/", "MaxKeys": limit}
        if token:
            args["ContinuationToken"] = token
        with node_errors():
            page = session.s3.list_objects_v2(**args)
        folders = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        # A "folder/" marker object is the folder itself, not an entry in it.
        objects = [o for o in page.get("Contents", []) if o["Key"] != prefix]
        next_token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        return console.page(session, "browse.html", title=f"{bucket}/{prefix}", bucket=bucket, prefix=prefix,
                            crumbs=crumbs(prefix), parent=parent_prefix(prefix), folders=folders, objects=objects,
                            next_token=next_token, first_page=not token, limit=limit if limit != PAGE_SIZE else None)

    @router.post("/buckets/{bucket}/upload")
    async def upload(request: Request, session: User, bucket: str) -> Response:
        # The session is checked before the body is read; the form parser spools files to disk.
        form = await request.form(max_files=1000, max_fields=10)
        try:
            token = form.get("csrf")
            console.check_csrf(session, token if isinstance(token, str) else "")
            raw_prefix = form.get("prefix")
            prefix = raw_prefix if isinstance(raw_prefix, str) else ""
            files = [f for f in form.getlist("file") if isinstance(f, UploadFile) and f.filename]
            if not files:
                session.flash("error", "Choose one or more files to upload.")
            for upload in files:
                key = upload_key(prefix, upload.filename or "")
                extra = {"ContentType": upload.content_type or "application/octet-stream"}
                with reported(session):
                    await run_in_threadpool(session.s3.upload_fileobj, upload.file, bucket, key,
                                            ExtraArgs=extra, Config=UPLOAD_TRANSFER)
                    session.flash("ok", f"Uploaded {key} ({upload.size} bytes).")
        finally:
            await form.close()
        return see_other(url(bucket_path(bucket), prefix=prefix))

    @router.post("/buckets/{bucket}/delete-objects")
    def delete_objects(
        session: User,
        bucket: str,
        csrf: Csrf = "",
        prefix: Annotated[str, Form()] = "",
        key: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        console.check_csrf(session, csrf)
        keys = key or []
        if not keys:
            session.flash("error", "Select the objects to delete first.")
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start:start + DELETE_BATCH]
            with reported(session):
                result = session.s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
                errors = result.get("Errors", [])
                for error in errors:
                    session.flash("error", f"{error.get('Key')}: {error.get('Code')}: {error.get('Message')}")
                deleted = len(batch) - len(errors)
                if deleted:
                    session.flash("ok", f"Deleted {deleted} object{'s' if deleted != 1 else ''}.")
        return see_other(url(bucket_path(bucket), prefix=prefix))

    @router.get("/buckets/{bucket}/object")
    def details(session: User, bucket: str, key: str) -> HTMLResponse:
        with node_errors():
            head = session.s3.head_object(Bucket=bucket, Key=key)
        return console.page(session, "object.html", title=f"{bucket}/{key}", bucket=bucket, key=key, head=head,
                            crumbs=crumbs(parent_prefix(key)), parent=parent_prefix(key))

    @router.post("/buckets/{bucket}/object/delete")
    def delete_object(session: User, bucket: str, csrf: Csrf = "", key: Annotated[str, Form()] = "") -> Response:
        console.check_csrf(session, csrf)
        with reported(session):
            session.s3.delete_object(Bucket=bucket, Key=key)
            session.flash("ok", f"Deleted {key}.")
        return see_other(url(bucket_path(bucket), prefix=parent_prefix(key)))

    @router.get("/buckets/{bucket}/download")
    def download(session: User, bucket: str, key: str) -> Response:
        with node_errors():
            obj = session.s3.get_object(Bucket=bucket, Key=key)
        body = obj["Body"]

        def blocks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(DOWNLOAD_BLOCK)
            finally:
                body.close()

        headers = {
            "content-disposition": attachment(key),
            "content-length": str(obj["ContentLength"]),
            # Stored bytes are the users' data: never let them act as a page of the console.
            "content-security-policy": "default-src 'none'; sandbox",
        }
        if obj.get("ETag"):
            headers["etag"] = obj["ETag"]
        return StreamingResponse(blocks(), media_type=obj.get("ContentType") or "application/octet-stream",
                                 headers=headers)

    return router
