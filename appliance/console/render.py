"""HTML for the console: Jinja2 templates with autoescaping on, and the filters they use.

Contract: every page is rendered here from `templates/`, and every value a template prints is
HTML-escaped unless a filter here marks it safe; object keys and bucket names are user data and
are only ever printed escaped, or URL-quoted inside escaped attributes. Templates get the user's
access key and CSRF token, never the session itself (so never the secret).
"""

from __future__ import annotations

import datetime
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).parent / "templates"
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human_bytes(value: int | float | None) -> str:
    """1536 -> "1.5 KiB"; binary units, as `df -h` shows drives."""
    if value is None:
        return "-"
    size, unit = float(value), 0
    while abs(size) >= 1024 and unit < len(UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{int(size)} B" if unit == 0 else f"{size:.1f} {UNITS[unit]}"


def timestamp(value: datetime.datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def url(path: str, **query: str | int | None) -> str:
    """A console URL: `url("/buckets/" + name, prefix="a b/")`; empty or None parameters are left out."""
    params = {k: str(v) for k, v in query.items() if v not in (None, "")}
    return path + ("?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote) if params else "")


def bucket_path(bucket: str, page: str = "") -> str:
    """The path of a bucket's page: names are quoted, though S3 names need it rarely."""
    return "/buckets/" + urllib.parse.quote(bucket, safe="") + (f"/{page}" if page else "")


def percent(part: int | float | None, whole: int | float | None) -> float:
    return 100.0 * float(part or 0) / float(whole) if whole else 0.0


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(bytes=human_bytes, timestamp=timestamp)
    env.globals.update(url=url, bucket_path=bucket_path, percent=percent)
    return env


ENV = _environment()


def render(name: str, **context: Any) -> str:
    return ENV.get_template(name).render(**context)


def render_stream(name: str, **context: Any) -> Iterator[bytes]:
    """Render a page as it is produced: a template looping over a lazy iterator sends each part
    as soon as the iterator yields, so a long operation shows its progress."""
    buffer: list[str] = []
    for chunk in ENV.get_template(name).generate(**context):
        buffer.append(chunk)
        # Jinja yields many tiny strings; flush at line ends so each step still reaches the browser.
        if chunk.endswith("\n"):
            yield "".join(buffer).encode()
            buffer.clear()
    if buffer:
        yield "".join(buffer).encode()
