"""`cairn admin`: operator commands against a running node's admin API, signed with SigV4.

Credentials come from CAIRN_ACCESS_KEY / CAIRN_SECRET_KEY, falling back to the root user
variables. An https:// node is verified (hostname too) against the system CAs plus `--ca` /
CAIRN_CA, a PEM file for a private CA. Output is for people (rich progress); exit codes are for
scripts: 0 when the action fully succeeded, 1 when it ran but something could not be done, 2 on bad
usage or no connection (an unverifiable certificate included).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

admin_app = typer.Typer(no_args_is_help=True, help="Operate a running Cairn node.")
PREFIX = "/cairn/admin/v1"


def _credentials() -> Credentials:
    access = os.environ.get("CAIRN_ACCESS_KEY") or os.environ.get("CAIRN_ROOT_USER") or os.environ.get("MINIO_ROOT_USER")
    secret = (os.environ.get("CAIRN_SECRET_KEY") or os.environ.get("CAIRN_ROOT_PASSWORD")
              or os.environ.get("MINIO_ROOT_PASSWORD"))
    if not access or not secret:
        typer.echo("cairn admin: set CAIRN_ACCESS_KEY and CAIRN_SECRET_KEY (or the root user variables)", err=True)
        raise typer.Exit(2)
    return Credentials(access, secret)


def _tls_context(ca: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca:
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ValueError) as exc:
            typer.echo(f"cairn admin: cannot use --ca {ca}: {exc}", err=True)
            raise typer.Exit(2) from None
    return context


class AdminClient:
    def __init__(self, endpoint: str, region: str = "us-east-1", timeout: float = 60.0, ca: str = "") -> None:
        self.url = urllib.parse.urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
        self.region = region
        self.timeout = timeout
        self.credentials = _credentials()
        self.tls = _tls_context(ca) if self.url.scheme == "https" else None

    def _request(self, method: str, path: str, query: dict[str, str]) -> http.client.HTTPResponse:
        qs = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        url = f"{self.url.scheme}://{self.url.netloc}{path}" + (f"?{qs}" if qs else "")
        request = AWSRequest(method=method, url=url, data=b"")
        S3SigV4Auth(self.credentials, "s3", self.region).add_auth(request)
        host = self.url.hostname or "127.0.0.1"
        conn = (http.client.HTTPSConnection(host, self.url.port, timeout=self.timeout, context=self.tls)
                if self.tls else http.client.HTTPConnection(host, self.url.port, timeout=self.timeout))
        try:
            conn.request(method, path + (f"?{qs}" if qs else ""), body=b"", headers=dict(request.headers.items()))
            response = conn.getresponse()
        except OSError as exc:
            typer.echo(f"cairn admin: cannot reach {url}: {exc}", err=True)
            raise typer.Exit(2) from None
        if response.status != 200:
            typer.echo(f"cairn admin: {method} {path} answered {response.status}: {response.read().decode(errors='replace')}",
                       err=True)
            raise typer.Exit(2)
        return response

    def get(self, path: str, **query: str) -> Any:
        return json.loads(self._request("GET", PREFIX + path, query).read())

    def stream(self, path: str, **query: str) -> Iterator[dict[str, Any]]:
        response = self._request("POST", PREFIX + path, query)
        for line in response:
            if line.strip():
                yield json.loads(line)


Endpoint = Annotated[str, typer.Option(help="The node's S3 endpoint, e.g. http://127.0.0.1:9000",
                                       envvar="CAIRN_ENDPOINT")]
CaFile = Annotated[str, typer.Option("--ca", help="PEM file of a private CA to trust for an https:// endpoint",
                                     envvar="CAIRN_CA", show_default=False)]


@admin_app.command()
def info(endpoint: Endpoint, ca: CaFile = "") -> None:
    """Show the deployment, its erasure sets and the state of every drive."""
    doc = AdminClient(endpoint, ca=ca).get("/info")
    typer.echo(f"deployment {doc['deployment_id']}, parity {doc['parity']}")
    for s in doc["sets"]:
        typer.echo(f"set {s['index'] + 1}: read quorum {s['read_quorum']}, write quorum {s['write_quorum']}")
        for d in s["drives"]:
            extra = f"{d.get('free', 0) / 2**30:.1f} GiB free" if d["state"] == "online" else d.get("error", "")
            healing = ", healing" if d.get("healing") else ""
            typer.echo(f"  {d['state']:7} {d['endpoint']}  {extra}{healing}")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def format_heal_status(doc: dict[str, Any], now: float) -> str:
    """The admin API's heal status document as lines a person reads (see `heal status --json`)."""
    lines = [
        f"queued objects:   {doc.get('queued', 0)}",
        f"healer:           {doc.get('objects_healed', 0)} healed, {doc.get('objects_failed', 0)} failed of "
        f"{doc.get('objects_scanned', 0)} checked; {_size(doc.get('bytes_written', 0))} written"
        + (f", {_size(doc['bytes_per_second'])}/s now" if doc.get("bytes_per_second") else ""),
    ]
    scanner = doc.get("scanner")
    if scanner:
        lines.append(
            f"scanner:          pass {scanner.get('passes', 0) + 1}: {scanner.get('pass_objects', 0)} objects, "
            f"{_size(scanner.get('pass_bytes', 0))} verified ({scanner.get('objects_per_second', 0):.0f} obj/s, "
            f"{_size(scanner.get('bytes_per_second', 0))}/s); {scanner.get('objects_queued', 0)} queued for healing "
            f"in total; last full pass took {_duration(scanner.get('last_pass_seconds') or None)}; "
            f"throttle {scanner.get('throttle', 0)} s/object"
        )
    drives = doc.get("healing_drives") or []
    lines.append(f"drives healing:   {len(drives) if drives else 'none'}")
    for d in drives:
        lines.append(f"  set {d['set'] + 1} {d['endpoint']}: {_size(d['used'])} written, "
                     f"{_size(d['remaining_bytes'])} to go, ETA {_duration(d.get('eta_seconds'))}")
    if "updated" in doc:
        lines.append(f"(as of {max(now - doc['updated'], 0):.0f} s ago)")
    return "\n".join(lines)


@admin_app.command()
def heal(
    endpoint: Endpoint,
    target: Annotated[str, typer.Argument(help="What to heal: BUCKET or BUCKET/PREFIX (default: everything); "
                                                "the word `status` shows background healing instead")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="With `status`: print the raw JSON document")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Name every object healed or purged")] = False,
    ca: CaFile = "",
) -> None:
    """Rebuild every missing or corrupt shard and metadata copy under TARGET; exit 1 if anything failed."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    client = AdminClient(endpoint, timeout=3600, ca=ca)
    if target == "status":
        doc = client.get("/heal/status")
        typer.echo(json.dumps(doc, indent=1) if as_json else format_heal_status(doc, time.time()))
        return
    bucket, _, prefix = target.partition("/")
    console = Console(stderr=True)
    failed: list[str] = []
    summary: dict[str, Any] = {}
    started = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("healing", total=None, detail="")
        for event in client.stream("/heal", bucket=bucket, prefix=prefix):
            if event["type"] == "object" and event["status"] == "failed":
                failed.append(f"{event['bucket']}/{event['key']}: {event['detail']}")
            elif verbose and event["type"] == "object" and event["status"] in ("healed", "purged"):
                typer.echo(f"{event['status'].upper()} {event['bucket']}/{event['key']}")
            if event["type"] in ("progress", "summary"):
                summary = event
                total = event.get("total") or None
                rate = event["scanned"] / max(event["elapsed"], 1e-9)
                eta = ((total - event["scanned"]) / rate) if total and rate else None
                detail = (f"{event['scanned']} objects, {event['healed']} healed, {event['failed']} failed, "
                          f"{event['bytes'] / 2**20:.1f} MiB, {rate:.0f} obj/s"
                          + (f", ETA {eta:.0f}s" if eta is not None else ""))
                progress.update(task, completed=event["scanned"], total=total, detail=detail)
    elapsed = time.monotonic() - started
    typer.echo(
        f"healed {summary.get('healed', 0)}, purged {summary.get('purged', 0)}, failed {summary.get('failed', 0)} "
        f"of {summary.get('scanned', 0)} objects; {summary.get('bytes', 0) / 2**20:.1f} MiB written in {elapsed:.1f}s"
    )
    for line in failed:
        typer.echo(f"FAILED {line}", err=True)
    if failed or not summary:
        raise typer.Exit(1)
