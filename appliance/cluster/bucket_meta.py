"""Bucket configuration (versioning state, CORS rules, tags): stored with the bucket on every drive.

Contract: a bucket's configuration is one JSON document in `.cairn.sys/buckets/<bucket>.meta` on
every drive of every set (the file `make_volume` creates with `{"created_ns": ...}`; a file of that
older shape reads as "never configured"). `BucketMetaStore.get` reads it from every drive and needs
a read quorum of answers in each set; `update` rewrites it under the bucket's configuration lock
and needs a write quorum of acknowledgements in each set, else it restores the old bytes on the
drives that took the change and raises.

Which copy wins: every write stamps `updated_ns`; the copy with the highest stamp among the drives
that answered is current. A write that reached the write quorum of a set is held by at least one
drive of any read quorum of that set (write quorum + read quorum > set size), so a read never
misses an acknowledged change; a drive that was away (or a bucket directory rebuilt by the healer)
holds an older stamp and is outvoted.

Caching: each worker process keeps what it read for `CACHE_SECONDS` (1 s). A change made through
one worker is visible to the others within that time; the worker that made it sees it at once.
Keys this module does not know (later configurations, e.g. policies) are kept as they are.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.engine.erasure_set import ErasureSet
from appliance.engine.errors import BucketNotFound, VolumeNotFound
from appliance.engine.quorum import reduce_quorum_errors

CACHE_SECONDS = 1.0
VERSIONING_ENABLED = "Enabled"
VERSIONING_SUSPENDED = "Suspended"
# The lock key of a bucket's configuration: '%' followed by a non-hex character is never a key path.
_CONFIG_LOCK_KEY = "%config"
_KNOWN = ("created_ns", "updated_ns", "versioning", "cors", "tags")


@dataclass(frozen=True, slots=True)
class BucketConfig:
    created_ns: int = 0
    updated_ns: int = 0
    versioning: str | None = None  # None (never versioned), "Enabled" or "Suspended"
    # CORS rules as plain maps (keys: id, allowed_origins, allowed_methods, allowed_headers,
    # expose_headers, max_age_seconds); None when the bucket has no CORS configuration.
    cors: list[dict[str, Any]] | None = None
    tags: dict[str, str] | None = None  # None when the bucket has no tag set
    other: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        doc: dict[str, Any] = dict(self.other)
        doc["created_ns"] = self.created_ns
        doc["updated_ns"] = self.updated_ns
        if self.versioning is not None:
            doc["versioning"] = self.versioning
        if self.cors is not None:
            doc["cors"] = self.cors
        if self.tags is not None:
            doc["tags"] = self.tags
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> BucketConfig:
        """The configuration in a bucket file; an empty or unreadable file is an unconfigured bucket."""
        try:
            doc = json.loads(data) if data else {}
            if not isinstance(doc, dict):
                return cls()
            versioning = doc.get("versioning")
            return cls(
                created_ns=int(doc.get("created_ns", 0)),
                updated_ns=int(doc.get("updated_ns", 0)),
                versioning=versioning if versioning in (VERSIONING_ENABLED, VERSIONING_SUSPENDED) else None,
                cors=list(doc["cors"]) if isinstance(doc.get("cors"), list) else None,
                tags={str(k): str(v) for k, v in doc["tags"].items()} if isinstance(doc.get("tags"), dict) else None,
                other={k: v for k, v in doc.items() if k not in _KNOWN},
            )
        except (ValueError, TypeError, AttributeError):
            return cls()


def newest(copies: list[bytes]) -> BucketConfig:
    """The current configuration among the copies drives returned (highest `updated_ns`)."""
    configs = [BucketConfig.decode(c) for c in copies]
    best = max(configs, key=lambda c: (c.updated_ns, c.created_ns), default=BucketConfig())
    created = max((c.created_ns for c in configs), default=0)
    return replace(best, created_ns=created)


class BucketMetaStore:
    """Reads and writes bucket configurations over every set of the deployment."""

    def __init__(self, sets: list[ErasureSet], cache_seconds: float = CACHE_SECONDS) -> None:
        self.sets = sets
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, BucketConfig]] = {}

    async def _read(self, bucket: str) -> tuple[BucketConfig, list[list[bytes | BaseException]]]:
        results = await asyncio.gather(*(s.fanout(lambda d: d.stat_volume(bucket)) for s in self.sets))
        copies: list[bytes] = []
        try:
            for eset, res in zip(self.sets, results, strict=True):
                reduce_quorum_errors(res, eset.quorums()[0], for_write=False)
                copies.extend(r for r in res if isinstance(r, bytes))
        except VolumeNotFound:
            raise BucketNotFound(bucket) from None
        return newest(copies), list(results)

    async def get(self, bucket: str) -> BucketConfig:
        """The bucket's configuration (at most `cache_seconds` old); `BucketNotFound` when absent."""
        cached = self._cache.get(bucket)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        config, _ = await self._read(bucket)
        self._cache[bucket] = (now, config)
        return config

    async def update(self, bucket: str, change: Callable[[BucketConfig], BucketConfig]) -> BucketConfig:
        """Apply `change` to the current configuration and store the result with write quorum."""
        async with self.sets[0].locker.lock(bucket, _CONFIG_LOCK_KEY):
            current, old = await self._read(bucket)
            config = replace(change(current), updated_ns=max(time.time_ns(), current.updated_ns + 1))
            blob = config.encode()
            results = await asyncio.gather(*(s.fanout(lambda d: d.write_volume_meta(bucket, blob)) for s in self.sets))
            try:
                for eset, res in zip(self.sets, results, strict=True):
                    reduce_quorum_errors(res, eset.quorums()[1], for_write=True)
            except BaseException as exc:
                await self._restore(bucket, old, list(results))
                if isinstance(exc, VolumeNotFound):
                    raise BucketNotFound(bucket) from None
                raise
            self._cache[bucket] = (time.monotonic(), config)
            return config

    async def _restore(
        self, bucket: str, old: list[list[bytes | BaseException]], results: list[list[None | BaseException]]
    ) -> None:
        """Write the previous bytes back on the drives that took a change that missed its quorum."""
        for eset, before, after in zip(self.sets, old, results, strict=True):
            targets = [(d, b) for d, b, r in zip(eset.drives, before, after, strict=True)
                       if isinstance(b, bytes) and not isinstance(r, BaseException)]
            await asyncio.gather(*(eset.fanout(lambda d, b=b: d.write_volume_meta(bucket, b), [d])  # type: ignore[misc]
                                   for d, b in targets))

    def forget(self, bucket: str) -> None:
        """Drop this process's cached copy (after the bucket is deleted or created)."""
        self._cache.pop(bucket, None)
