"""Browser-based POST uploads: the policy document, its signature and its conditions, sans-IO.

Contract: `verify_post_policy()` takes the form fields of a POST object upload (every field but
the file, as submitted) and either returns who signed it with the limits the caller must still
enforce on the file (`PolicyConditions.check_size`), or raises the `S3Error` AWS sends. It checks,
in this order: the signature over the base64 policy (SigV4 `x-amz-signature` or V2 `signature`),
the policy's expiration, every condition against the fields, and that every field is covered by
a condition. Form field names are case-insensitive; values are compared exactly. A form with
neither a policy nor a signature is anonymous: the result names no one and imposes no limits.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from appliance.s3 import sigv2
from appliance.s3.errors import S3Error
from appliance.s3.sigv4 import (
    ALGORITHM,
    UNSIGNED_PAYLOAD,
    AuthResult,
    derive_signing_key,
    lookup_access_key,
    parse_amz_date,
    parse_credential,
    sign_string,
    signature_mismatch,
    signatures_equal,
    utc_now,
)

# Fields that need no condition: the signature material, the file, and x-ignore-* by definition.
EXEMPT_FIELDS = frozenset({"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"})
V4_FIELDS = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature")
V2_FIELDS = ("awsaccesskeyid", "signature")


@dataclass(frozen=True)
class PolicyConditions:
    """What the caller must still enforce once the file arrives."""

    expiration: datetime | None
    content_length_range: tuple[int, int] | None

    def check_size(self, size: int, *, complete: bool = True) -> None:
        """EntityTooLarge as soon as `size` passes the maximum; EntityTooSmall once `complete`."""
        if self.content_length_range is None:
            return
        low, high = self.content_length_range
        if size > high:
            raise S3Error(
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
                ProposedSize=str(size),
                MaxSizeAllowed=str(high),
            )
        if complete and size < low:
            raise S3Error(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                ProposedSize=str(size),
                MinSizeAllowed=str(low),
            )


def verify_post_policy(
    fields: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    *,
    now: datetime,
    region: str,
    bucket: str,
) -> tuple[AuthResult | None, PolicyConditions]:
    """Authenticate a POST upload form and check it against its policy (see module docstring)."""
    form = {name.lower(): value for name, value in fields.items()}
    if "key" not in form:
        raise S3Error("UserKeyMustBeSpecified", ArgumentName="key")
    v4 = any(name in form for name in V4_FIELDS)
    v2 = any(name in form for name in V2_FIELDS)
    if v4 and v2:
        raise S3Error(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the x-amz-signature or the signature field should be specified",
            ArgumentName="signature",
        )
    if not (v4 or v2):
        if "policy" in form:
            raise _missing_field("AWSAccessKeyId")
        return None, PolicyConditions(None, None)
    moment = utc_now(now)
    auth = _verify_v4(form, lookup_secret, region) if v4 else _verify_v2(form, lookup_secret)
    policy = _decode_policy(form["policy"])
    return auth, _check_policy(policy, form, moment, bucket)


def _missing_field(name: str) -> S3Error:
    return S3Error(
        "InvalidArgument",
        f"Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields.",
        ArgumentName=name,
    )


def _require(form: Mapping[str, str], names: tuple[str, ...]) -> None:
    for name in names:
        if not form.get(name):
            raise _missing_field(name)


def _verify_v4(form: Mapping[str, str], lookup_secret: Callable[[str], str | None], region: str) -> AuthResult:
    _require(form, (*V4_FIELDS, "policy"))
    if form["x-amz-algorithm"] != ALGORITHM:
        raise S3Error(
            "InvalidArgument", f'X-Amz-Algorithm only supports "{ALGORITHM}"', ArgumentName="x-amz-algorithm"
        )
    amz_date = form["x-amz-date"]
    if parse_amz_date(amz_date) is None:
        raise S3Error(
            "InvalidArgument",
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
            ArgumentName="x-amz-date",
        )
    credential = parse_credential(
        form["x-amz-credential"],
        amz_date=amz_date,
        region=region,
        code="InvalidArgument",
        prefix="Error parsing the X-Amz-Credential parameter; ",
    )
    secret = lookup_access_key(credential.access_key, lookup_secret)
    signing_key = derive_signing_key(secret, credential.date, credential.region, credential.service)
    provided = form["x-amz-signature"]
    if not signatures_equal(sign_string(signing_key, form["policy"]), provided):
        raise signature_mismatch(credential.access_key, form["policy"], provided)
    return AuthResult(
        access_key=credential.access_key,
        payload_mode=UNSIGNED_PAYLOAD,
        presigned=True,
        signature=provided,
        signing_key=signing_key,
        amz_date=amz_date,
        scope=credential.scope,
    )


def _verify_v2(form: Mapping[str, str], lookup_secret: Callable[[str], str | None]) -> AuthResult:
    _require(form, ("awsaccesskeyid", "signature", "policy"))
    access_key = form["awsaccesskeyid"]
    secret = lookup_access_key(access_key, lookup_secret)
    provided = form["signature"]
    if not signatures_equal(sigv2.sign_string(secret, form["policy"]), provided):
        raise signature_mismatch(access_key, form["policy"], provided)
    return sigv2.v2_result(access_key, provided, presigned=True)


def _invalid_policy(detail: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", f"Invalid Policy: {detail}")


def _decode_policy(encoded: str) -> dict[str, Any]:
    try:
        # Some encoders wrap base64 at 76 columns; the line breaks carry no data.
        raw = base64.b64decode("".join(encoded.split()), validate=True)
        policy = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _invalid_policy("Invalid JSON.") from None
    if not isinstance(policy, dict):
        raise _invalid_policy("Invalid JSON.")
    return policy


def _policy_failed(detail: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {detail}")


def _check_policy(policy: dict[str, Any], form: Mapping[str, str], now: datetime, bucket: str) -> PolicyConditions:
    expiration_text = policy.get("expiration")
    if expiration_text is None:
        raise _invalid_policy("Policy missing expiration.")
    try:
        expiration = datetime.fromisoformat(str(expiration_text))
    except ValueError:
        raise _invalid_policy(f"Invalid 'expiration' value: '{expiration_text}'") from None
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    conditions = policy.get("conditions")
    if not isinstance(conditions, list):
        raise _invalid_policy("Policy missing conditions.")
    if now > expiration:
        raise _policy_failed("Policy expired.")
    covered: set[str] = set()
    length_range: tuple[int, int] | None = None
    for condition in conditions:
        if isinstance(condition, dict):
            for name, value in condition.items():
                _check_match("eq", name.lower(), value, form, bucket, covered)
        elif isinstance(condition, list) and condition and str(condition[0]).lower() == "content-length-range":
            low, high = _length_range(condition)
            length_range = (low, high) if length_range is None else (max(low, length_range[0]),
                                                                    min(high, length_range[1]))
        elif (
            isinstance(condition, list)
            and len(condition) == 3
            and str(condition[0]).lower() in ("eq", "starts-with")
            and isinstance(condition[1], str)
            and condition[1].startswith("$")
        ):
            _check_match(condition[0].lower(), condition[1][1:].lower(), condition[2], form, bucket, covered)
        else:
            raise _invalid_policy(f"Invalid Condition: {json.dumps(condition)}")
    extra = sorted(
        name for name in form if name not in covered and name not in EXEMPT_FIELDS and not name.startswith("x-ignore-")
    )
    if extra:
        raise _policy_failed(f"Extra input fields: {', '.join(extra)}")
    return PolicyConditions(expiration, length_range)


def _check_match(
    op: str, name: str, expected: object, form: Mapping[str, str], bucket: str, covered: set[str]
) -> None:
    if not isinstance(expected, str):
        raise _invalid_policy(f"Invalid Simple-Condition: value of ${name} must be a string.")
    actual = bucket if name == "bucket" else form.get(name, "")
    if op == "eq":
        ok = actual == expected
    elif name == "content-type":
        # A Content-Type field may list several types; each must match the prefix.
        ok = all(part.strip().startswith(expected) for part in actual.split(","))
    else:
        ok = actual.startswith(expected)
    if not ok:
        raise _policy_failed(f"Policy Condition failed: {json.dumps([op, '$' + name, expected])}")
    covered.add(name)


def _length_range(condition: list[Any]) -> tuple[int, int]:
    if len(condition) != 3:
        raise _invalid_policy(f"Invalid Condition: {json.dumps(condition)}")
    try:
        low, high = int(condition[1]), int(condition[2])
    except (TypeError, ValueError):
        raise _invalid_policy(f"Invalid content-length-range: {json.dumps(condition)}") from None
    if low < 0 or high < low:
        raise _invalid_policy(f"Invalid content-length-range: {json.dumps(condition)}")
    return low, high
