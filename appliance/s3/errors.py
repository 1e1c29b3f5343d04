"""S3 errors: the one table of codes, the one table of domain errors, and the error body.

Contract: every error a client sees is an `S3Error` whose code comes from the AWS S3 "Error
responses" list, with AWS's HTTP status and message unless the raiser says something more precise.
The engine never raises S3 errors; `from_exception` turns its domain errors into S3 errors through
`DOMAIN_ERRORS`, the only place that mapping is written down. Anything unexpected becomes
`InternalError` and its text never reaches the client.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from appliance.engine import errors as engine

# code -> (HTTP status, message). Messages are the ones S3 sends on the wire where they differ from
# the reference table, because clients and their users see those.
ERRORS: dict[str, tuple[int, str]] = {
    "AccessControlListNotSupported": (400, "The bucket does not allow ACLs"),
    "AccessDenied": (403, "Access Denied"),
    "AccessForbidden": (403, "CORSResponse: This CORS request is not allowed."),
    "AccessPointAlreadyOwnedByYou": (409, "An access point with an identical name already exists in your "
                                          "account."),
    "AccountProblem": (403, "There is a problem with your AWS account that prevents the operation from "
                            "completing successfully."),
    "AllAccessDisabled": (403, "All access to this Amazon S3 resource has been disabled."),
    "AmbiguousGrantByEmailAddress": (400, "The email address you provided is associated with more than one "
                                          "account."),
    "AuthorizationHeaderMalformed": (400, "The authorization header you provided is invalid."),
    "AuthorizationQueryParametersError": (400, "The authorization query parameters you provided are "
                                               "invalid."),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received."),
    "BadRequest": (400, "An error occurred when parsing the HTTP request."),
    "BucketAlreadyExists": (409, "The requested bucket name is not available. The bucket namespace is "
                                 "shared by all users of the system. Please select a different name and "
                                 "try again."),
    "BucketAlreadyOwnedByYou": (409, "Your previous request to create the named bucket succeeded and you "
                                     "already own it."),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty"),
    "ClientTokenConflict": (409, "The provided client token conflicts with a request in progress."),
    "ConditionalRequestConflict": (409, "A conflicting operation occurred. If using PutObject you can "
                                        "retry the request. If using multipart upload you should initiate "
                                        "another CreateMultipartUpload request and re-upload each part."),
    "ConnectionClosedByRequester": (400, "Returned to the original caller when an error is encountered "
                                         "while reading the WriteGetObjectResponse body."),
    "CredentialsNotSupported": (400, "This request does not support credentials."),
    "CrossLocationLoggingProhibited": (403, "Cross-location logging not allowed."),
    "DeviceNotActiveError": (400, "The device is not currently active."),
    "EncryptionTypeMismatch": (400, "The existing object was created with a different encryption type."),
    "EndpointNotFound": (400, "Direct requests to the correct endpoint."),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed object size."),
    "EntityTooSmall": (400, "Your proposed upload is smaller than the minimum allowed object size."),
    "ExpiredToken": (400, "The provided token has expired."),
    "IllegalLocationConstraintException": (400, "The specified location constraint is not valid for this "
                                                "endpoint."),
    "IllegalVersioningConfigurationException": (400, "The versioning configuration specified in the "
                                                     "request is invalid."),
    "IncompleteBody": (400, "You did not provide the number of bytes specified by the Content-Length HTTP "
                            "header"),
    "IncorrectEndpoint": (400, "The specified bucket exists in another Region. Direct requests to the "
                               "correct endpoint."),
    "IncorrectNumberOfFilesInPostRequest": (400, "POST requires exactly one file upload per request."),
    "InlineDataTooLarge": (400, "Inline data exceeds the maximum allowed size."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (403, "The AWS Access Key Id you provided does not exist in our records."),
    "InvalidAccessPoint": (400, "The specified access point name or account is not valid."),
    "InvalidAccessPointAliasError": (400, "The specified access point alias name is not valid."),
    "InvalidAddressingHeader": (400, "You must specify the Anonymous role."),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketAclWithObjectOwnership": (400, "Bucket cannot have ACLs set with ObjectOwnership's "
                                                 "BucketOwnerEnforced setting"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidBucketOwnerAWSAccountID": (400, "The value of the expected bucket owner parameter must be an "
                                            "AWS account ID."),
    "InvalidBucketState": (409, "The request is not valid with the current state of the bucket."),
    "InvalidChunkSizeError": (403, "Only the last chunk is allowed to have a size less than 8192 bytes"),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidEncryptionAlgorithmError": (400, "The encryption request you specified is not valid. The valid "
                                             "value is AES256."),
    "InvalidLocationConstraint": (400, "The specified location constraint is not valid."),
    "InvalidObjectState": (403, "The operation is not valid for the object's storage class"),
    "InvalidPart": (400, "One or more of the specified parts could not be found.  The part may not have "
                         "been uploaded, or the specified entity tag may not match the part's entity tag."),
    "InvalidPartNumber": (416, "The requested partnumber is not satisfiable"),
    "InvalidPartOrder": (400, "The list of parts was not in ascending order. Parts must be ordered by part "
                              "number."),
    "InvalidPayer": (403, "All access to this object has been disabled."),
    "InvalidPolicyDocument": (400, "The content of the form does not meet the conditions specified in the "
                                   "policy document."),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request"),
    "InvalidSecurity": (403, "The provided security credentials are not valid."),
    "InvalidSOAPRequest": (400, "The SOAP request body is invalid."),
    "InvalidStorageClass": (400, "The storage class you specified is not valid"),
    "InvalidTag": (400, "The tag provided was not a valid tag."),
    "InvalidTargetBucketForLogging": (400, "The target bucket for logging does not exist, is not owned by "
                                           "you, or does not have the appropriate grants for the "
                                           "log-delivery group."),
    "InvalidToken": (400, "The provided token is malformed or otherwise invalid."),
    "InvalidURI": (400, "Couldn't parse the specified URI."),
    "InvalidWriteOffset": (400, "The write offset value that you specified does not match the current "
                                "object size."),
    "KeyTooLongError": (400, "Your key is too long"),
    "MalformedACLError": (400, "The XML you provided was not well-formed or did not validate against our "
                               "published schema."),
    "MalformedPOSTRequest": (400, "The body of your POST request is not well-formed multipart/form-data."),
    "MalformedPolicy": (400, "Policies must be valid JSON and the first byte must be '{'"),
    "MalformedXML": (400, "The XML you provided was not well-formed or did not validate against our "
                          "published schema"),
    "MaxMessageLengthExceeded": (400, "Your request was too big."),
    "MaxPostPreDataLengthExceededError": (400, "Your POST request fields preceding the upload file were "
                                               "too large."),
    "MetadataTooLarge": (400, "Your metadata headers exceed the maximum allowed metadata size."),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingAttachment": (400, "A SOAP attachment was expected, but none were found."),
    "MissingAuthenticationToken": (403, "The request was not signed."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "MissingRequestBodyError": (400, "Request Body is empty"),
    "MissingSecurityElement": (400, "The SOAP 1.1 request is missing a security element."),
    "MissingSecurityHeader": (400, "Your request was missing a required header"),
    "NoLoggingStatusForKey": (400, "There is no such thing as a logging status subresource for a key."),
    "NoSuchAccessPoint": (404, "The specified access point does not exist."),
    "NoSuchAsyncRequest": (404, "The specified request was not found."),
    "NoSuchBucket": (404, "The specified bucket does not exist"),
    "NoSuchBucketPolicy": (404, "The bucket policy does not exist"),
    "NoSuchCORSConfiguration": (404, "The CORS configuration does not exist"),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchLifecycleConfiguration": (404, "The lifecycle configuration does not exist"),
    "NoSuchMultiRegionAccessPoint": (404, "The specified Multi-Region Access Point does not exist."),
    "NoSuchObjectLockConfiguration": (404, "The specified object does not have an ObjectLock configuration."),
    "NoSuchPublicAccessBlockConfiguration": (404, "The public access block configuration was not found"),
    "NoSuchTagSet": (404, "The TagSet does not exist"),
    "NoSuchUpload": (404, "The specified upload does not exist. The upload ID may be invalid, or the "
                          "upload may have been aborted or completed."),
    "NoSuchVersion": (404, "The specified version does not exist."),
    "NoSuchWebsiteConfiguration": (404, "The specified bucket does not have a website configuration"),
    "NotDeviceOwnerError": (400, "The device that generated the token is not owned by the authenticated "
                                 "user."),
    "NotImplemented": (501, "A header you provided implies functionality that is not implemented"),
    "NotModified": (304, "Not Modified"),
    "NotSignedUp": (403, "Your account is not signed up for the Amazon S3 service."),
    "ObjectLockConfigurationNotFoundError": (404, "Object Lock configuration does not exist for this bucket"),
    "ObjectNotInActiveTierError": (403, "The source object of the COPY operation is not in the active tier "
                                        "and is only stored in Amazon Glacier."),
    "OperationAborted": (409, "A conflicting conditional operation is currently in progress against this "
                              "resource. Please try again."),
    "OwnershipControlsNotFoundError": (404, "The bucket ownership controls were not found"),
    "PermanentRedirect": (301, "The bucket you are attempting to access must be addressed using the "
                               "specified endpoint. Please send all future requests to this endpoint."),
    "PreconditionFailed": (412, "At least one of the pre-conditions you specified did not hold"),
    "Redirect": (307, "Temporary redirect."),
    "ReplicationConfigurationNotFoundError": (404, "The replication configuration was not found"),
    "RequestHeaderSectionTooLarge": (400, "Your request header section exceeds the maximum allowed size."),
    "RequestIsNotMultiPartContent": (400, "Bucket POST must be of the enclosure-type multipart/form-data"),
    "RequestTimeTooSkewed": (403, "The difference between the request time and the current time is too "
                                  "large."),
    "RequestTimeout": (400, "Your socket connection to the server was not read from or written to within "
                            "the timeout period. Idle connections will be closed."),
    "RequestTorrentOfBucketError": (400, "Requesting the torrent file of a bucket is not permitted."),
    "ResponseCheckSumError": (400, "An error occurred while the response was being returned."),
    "RestoreAlreadyInProgress": (409, "Object restore is already in progress"),
    "ServerSideEncryptionConfigurationNotFoundError": (404, "The server side encryption configuration was "
                                                            "not found"),
    "ServiceUnavailable": (503, "Service is unable to handle request."),
    "SignatureDoesNotMatch": (403, "The request signature we calculated does not match the signature you "
                                   "provided. Check your key and signing method."),
    "SlowDown": (503, "Please reduce your request rate."),
    "TemporaryRedirect": (307, "You are being redirected to the bucket while DNS updates."),
    "TokenRefreshRequired": (400, "The provided token must be refreshed."),
    "TooManyAccessPoints": (400, "You have attempted to create more access points than are allowed for an "
                                 "account."),
    "TooManyBuckets": (400, "You have attempted to create more buckets than allowed"),
    "TooManyParts": (400, "You have attempted to upload more parts than allowed for this upload."),
    "UnauthorizedAccessError": (403, "Applicable in China Regions only."),
    "UnexpectedContent": (400, "This request does not support content"),
    "UnresolvableGrantByEmailAddress": (400, "The email address you provided does not match any account on "
                                             "record."),
    "UserKeyMustBeSpecified": (400, "The bucket POST must contain the specified field name. If it is "
                                    "specified, check the order of the fields."),
    "XAmzContentSHA256Mismatch": (400, "The provided 'x-amz-content-sha256' header does not match what was "
                                       "computed."),
}

# XML text escaping, shared with `appliance.s3.xml`. Control characters that XML 1.0 cannot carry
# raw become character references as S3 writes them (such keys are only readable with
# encoding-type=url, which is why SDKs ask for it); CR and LF are referenced so they survive
# the parser's line-end normalisation.
_ESCAPES: dict[int, str] = {
    ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord('"'): "&quot;", ord("'"): "&apos;",
}
_ESCAPES.update({c: f"&#x{c:X};" for c in range(0x20) if c != 0x09})
_ESCAPES.update({0xFFFE: "&#xFFFE;", 0xFFFF: "&#xFFFF;"})


_NEEDS_ESCAPE = re.compile("[&<>\"'\x00-\x08\x0a-\x1f\ufffe\uffff]")


def escape(text: str) -> str:
    """`text` as XML character data or attribute value."""
    # Most keys need nothing; a regex search is ten times cheaper than translate.
    return text.translate(_ESCAPES) if _NEEDS_ESCAPE.search(text) else text


# A code missing from the table is a client error rather than a crash in the error path.
_UNKNOWN_STATUS = 400


class S3Error(Exception):
    """One S3 error response: code, message, HTTP status and the extra elements AWS adds to the body."""

    def __init__(
        self, code: str, message: str | None = None, *, status: int | None = None, **extra: object
    ) -> None:
        known = ERRORS.get(code)
        self.code = code
        self.message = message if message is not None else (known[1] if known else code)
        self.status = status if status is not None else (known[0] if known else _UNKNOWN_STATUS)
        self.extra: dict[str, object] = extra
        super().__init__(f"{code}: {self.message}")


class DomainMapping(NamedTuple):
    code: str
    message: str | None
    # (attribute of the domain error, element of the S3 error body), copied when present.
    fields: tuple[tuple[str, str], ...] = ()


_BUCKET = (("bucket", "BucketName"),)
_KEY = (("key", "Key"),)

# The order does not matter: lookup walks the raised exception's MRO, so the most specific class wins.
DOMAIN_ERRORS: dict[type[BaseException], DomainMapping] = {
    engine.BucketNotFound: DomainMapping("NoSuchBucket", None, _BUCKET),
    engine.BucketExists: DomainMapping("BucketAlreadyOwnedByYou", None, _BUCKET),
    engine.BucketNotEmpty: DomainMapping("BucketNotEmpty", None, _BUCKET),
    engine.InvalidBucketName: DomainMapping("InvalidBucketName", None, _BUCKET),
    engine.ObjectNotFound: DomainMapping("NoSuchKey", None, _KEY),
    engine.VersionNotFound: DomainMapping(
        "NoSuchVersion", None, (("key", "Key"), ("version_id", "VersionId"))
    ),
    engine.KeyTooLong: DomainMapping("KeyTooLongError", None),
    engine.UploadNotFound: DomainMapping("NoSuchUpload", None, (("upload_id", "UploadId"),)),
    engine.InvalidPart: DomainMapping("InvalidPart", None),
    engine.PartTooSmall: DomainMapping("EntityTooSmall", None),
    engine.InvalidObjectName: DomainMapping(
        "InvalidArgument",
        "Object name is not valid: it must be non-empty and each '/'-separated segment at most 255 bytes.",
        (("key", "Key"),),
    ),
    engine.InvalidRange: DomainMapping("InvalidRange", None, (("size", "ActualObjectSize"),)),
    engine.ReadQuorumUnavailable: DomainMapping(
        "ServiceUnavailable", "Service is unable to handle request: read quorum not available. Please retry."
    ),
    engine.LockTimeout: DomainMapping(
        "ServiceUnavailable", "Service is unable to handle request: the object is locked or too few nodes answer. "
        "Please retry."
    ),
    engine.WriteQuorumUnavailable: DomainMapping(
        "ServiceUnavailable", "Service is unable to handle request: write quorum not available. Please retry."
    ),
    engine.PreconditionFailed: DomainMapping("PreconditionFailed", None),
    # Drive errors normally end in a quorum error; one that escapes the reduction is either a
    # transient condition of the storage (503, the client retries) or a server fault (500).
    engine.DriveOffline: DomainMapping(
        "ServiceUnavailable", "Service is unable to handle request: a drive is offline. Please retry."
    ),
    engine.DriveFull: DomainMapping(
        "ServiceUnavailable", "Service is unable to handle request: storage is full."
    ),
    engine.DriveReadOnly: DomainMapping(
        "ServiceUnavailable", "Service is unable to handle request: storage is read-only."
    ),
    engine.DriveError: DomainMapping("InternalError", None),
    engine.EngineError: DomainMapping("InternalError", None),
}


def from_exception(exc: BaseException) -> S3Error:
    """The S3 error a client sees for `exc`."""
    if isinstance(exc, S3Error):
        return exc
    for cls in type(exc).__mro__:
        mapping = DOMAIN_ERRORS.get(cls)
        if mapping is not None:
            extra = {element: getattr(exc, attr) for attr, element in mapping.fields if hasattr(exc, attr)}
            return S3Error(mapping.code, mapping.message, **extra)
    return S3Error("InternalError")


def error_body(err: S3Error, *, resource: str, request_id: str, host_id: str = "") -> bytes:
    """The XML body of an error response."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>',
        escape(err.code),
        "</Code><Message>",
        escape(err.message),
        "</Message>",
    ]
    for name, value in err.extra.items():
        parts.append(f"<{name}>{escape(str(value))}</{name}>")
    parts += [
        "<Resource>", escape(resource), "</Resource><RequestId>", escape(request_id),
        "</RequestId><HostId>", escape(host_id), "</HostId></Error>",
    ]
    return "".join(parts).encode()
