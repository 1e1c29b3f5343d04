"""Domain errors raised by the storage engine and the cluster layer.

The engine speaks only in these; it never knows which API called it. The S3 layer maps each class
to an S3 error code in exactly one table (`appliance.s3.errors.DOMAIN_ERRORS`). Drive-level errors
(`DriveError` and its subclasses) are what a single drive reports; quorum reduction turns a set of
them into one object-level error.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


# --- object-level errors (what an API caller sees, after quorum reduction) ---


class BucketNotFound(EngineError):
    def __init__(self, bucket: str) -> None:
        super().__init__(f"bucket {bucket!r} does not exist")
        self.bucket = bucket


class BucketExists(EngineError):
    def __init__(self, bucket: str) -> None:
        super().__init__(f"bucket {bucket!r} already exists")
        self.bucket = bucket


class BucketNotEmpty(EngineError):
    def __init__(self, bucket: str) -> None:
        super().__init__(f"bucket {bucket!r} is not empty")
        self.bucket = bucket


class InvalidBucketName(EngineError):
    def __init__(self, bucket: str) -> None:
        super().__init__(f"invalid bucket name {bucket!r}")
        self.bucket = bucket


class ObjectNotFound(EngineError):
    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(f"object {bucket}/{key} does not exist")
        self.bucket = bucket
        self.key = key


class VersionNotFound(EngineError):
    def __init__(self, bucket: str, key: str, version_id: str) -> None:
        super().__init__(f"version {version_id} of {bucket}/{key} does not exist")
        self.bucket = bucket
        self.key = key
        self.version_id = version_id


class InvalidObjectName(EngineError):
    """The key cannot be stored (a path segment longer than a file name may be, for example)."""


class KeyTooLong(InvalidObjectName):
    """The key is longer than 1024 bytes of UTF-8."""


class InvalidRange(EngineError):
    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for an object of {size} bytes")
        self.size = size


class LockTimeout(EngineError):
    """An object's lock could not be taken in time (held elsewhere, or too few lock servers answer)."""


class ReadQuorumUnavailable(EngineError):
    """Fewer drives than the read quorum answered consistently: no bytes can be trusted."""


class WriteQuorumUnavailable(EngineError):
    """Fewer drives than the write quorum acknowledged: the write did not happen."""


class PreconditionFailed(EngineError):
    """A conditional write (If-Match / If-None-Match) found the current object did not match."""


class CodecSelfTestFailed(EngineError):
    """The erasure codec produced output that differs from the golden vectors."""


# --- multipart uploads ---


class UploadNotFound(EngineError):
    def __init__(self, bucket: str, key: str, upload_id: str) -> None:
        super().__init__(f"no upload {upload_id} of {bucket}/{key}")
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id


class InvalidPart(EngineError):
    """A completed part was never uploaded, or its ETag (or checksum) differs from the uploaded one."""


class PartTooSmall(EngineError):
    """A part other than the last is smaller than `MIN_PART_SIZE`."""


# --- drive-level errors (one drive's answer; reduced against a quorum) ---


class DriveError(EngineError):
    """Something one drive reported."""


class DriveOffline(DriveError):
    """The drive is unreachable, unmounted, or failing every call (EIO)."""


class DriveFull(DriveError):
    """The drive returned ENOSPC."""


class DriveReadOnly(DriveError):
    """The drive returned EROFS."""


class FileNotFoundOnDrive(DriveError):
    """The drive is healthy but does not hold the requested file or volume."""


class VolumeNotFound(DriveError):
    """The drive is healthy but does not hold the bucket directory."""


class FileCorrupt(DriveError):
    """The file exists but fails its checksum (bitrot, truncation, bad metadata)."""


class UnformattedDrive(DriveError):
    """The drive holds no format.json (a fresh or replaced drive)."""


class ForeignDrive(DriveError):
    """The drive belongs to another deployment or another slot: it is refused."""


class VolumeExists(DriveError):
    """The drive already holds the bucket directory."""
