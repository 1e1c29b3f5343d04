"""POST policy uploads: boto3-signed forms verify, and every tampered field or policy is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from appliance.s3 import sigv2, sigv4
from appliance.s3.errors import S3Error
from appliance.s3.postpolicy import PolicyConditions, verify_post_policy

SECRETS = {"AKIDPOST": "post/secret+key"}
lookup = SECRETS.get
NOW = datetime.now(UTC)
CONDITIONS: list[Any] = [
    {"acl": "private"},
    ["starts-with", "$Content-Type", "image/"],
    ["content-length-range", 1, 1048576],
    ["eq", "$x-amz-meta-owner", "alice"],
    ["starts-with", "$success_action_status", ""],
]
FIELDS = {"acl": "private", "Content-Type": "image/png", "x-amz-meta-owner": "alice", "success_action_status": "201"}


def boto_form(signature_version: str, region: str = "us-east-1") -> dict[str, str]:
    s3 = boto3.client(
        "s3", endpoint_url="https://s3.example.test", region_name=region, aws_access_key_id="AKIDPOST",
        aws_secret_access_key=SECRETS["AKIDPOST"],
        config=Config(signature_version=signature_version, s3={"addressing_style": "path"}),
    )
    post = s3.generate_presigned_post("bkt", "uploads/${filename}", Fields=dict(FIELDS), Conditions=CONDITIONS,
                                      ExpiresIn=600)
    return dict(post["fields"])


def verify(form: dict[str, str], **kwargs: Any) -> tuple[sigv4.AuthResult | None, PolicyConditions]:
    options: dict[str, Any] = {"now": NOW, "region": "us-east-1", "bucket": "bkt", **kwargs}
    return verify_post_policy(form, lookup, **options)


@pytest.mark.parametrize("signature_version", ["s3v4", "s3"])
def test_boto3_presigned_post_verifies(signature_version: str) -> None:
    form = boto_form(signature_version)
    auth, conditions = verify(form)
    assert auth is not None and auth.access_key == "AKIDPOST" and auth.presigned
    assert conditions.content_length_range == (1, 1048576)
    assert conditions.expiration is not None and conditions.expiration > NOW
    # The caller substitutes ${filename} in the key; the policy's starts-with still holds.
    assert verify({**form, "key": "uploads/cat.png"})[0] == auth


def test_field_names_are_case_insensitive() -> None:
    form = {name.upper(): value for name, value in boto_form("s3v4").items()}
    assert verify(form)[0] is not None


def _with(**changes: str | None) -> Callable[[dict[str, str]], dict[str, str]]:
    def change(form: dict[str, str]) -> dict[str, str]:
        out = dict(form)
        for name, value in changes.items():
            if value is None:
                out.pop(name, None)
            else:
                out[name] = value
        return out

    return change


def _resigned_policy(form: dict[str, str]) -> dict[str, str]:
    policy = json.loads(base64.b64decode(form["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if c != {"acl": "private"}]
    return {**form, "policy": base64.b64encode(json.dumps(policy).encode()).decode()}


# id, form change, verify() keyword changes, code, message fragment
TAMPERED: list[tuple[str, Callable[[dict[str, str]], dict[str, str]], dict[str, Any], str, str]] = [
    ("key-outside-prefix", _with(key="other/x"), {}, "AccessDenied", '["starts-with", "$key", "uploads/"]'),
    ("acl", _with(acl="public-read"), {}, "AccessDenied", "Policy Condition failed"),
    ("content-type", _with(**{"Content-Type": "text/html"}), {}, "AccessDenied", "$content-type"),
    ("content-type-list", _with(**{"Content-Type": "image/png, text/html"}), {}, "AccessDenied", "$content-type"),
    ("meta-eq", _with(**{"x-amz-meta-owner": "mallory"}), {}, "AccessDenied", "$x-amz-meta-owner"),
    ("extra-field", _with(**{"x-amz-meta-extra": "1"}), {}, "AccessDenied", "Extra input fields: x-amz-meta-extra"),
    ("other-bucket", _with(), {"bucket": "other"}, "AccessDenied", "$bucket"),
    ("expired", _with(), {"now": NOW + timedelta(days=1)}, "AccessDenied", "Policy expired"),
    ("policy-edited", _resigned_policy, {}, "SignatureDoesNotMatch", ""),
    ("signature", _with(**{"x-amz-signature": "0" * 64}), {}, "SignatureDoesNotMatch", ""),
    ("unknown-key", _with(**{"x-amz-credential": "AKIDNOPE/" + NOW.strftime("%Y%m%d") + "/us-east-1/s3/aws4_request"}),
     {}, "InvalidAccessKeyId", ""),
    ("wrong-region", _with(), {"region": "eu-west-1"}, "InvalidArgument", "expecting 'eu-west-1'"),
    ("credential-date", _with(**{"x-amz-date": (NOW - timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")}), {},
     "InvalidArgument", "Invalid credential date"),
    ("bad-date", _with(**{"x-amz-date": "yesterday"}), {}, "InvalidArgument", "ISO8601"),
    ("algorithm", _with(**{"x-amz-algorithm": "AWS4-HMAC-SHA1"}), {}, "InvalidArgument", "AWS4-HMAC-SHA256"),
    ("no-key", _with(key=None), {}, "UserKeyMustBeSpecified", ""),
    ("no-policy", _with(policy=None), {}, "InvalidArgument", "'policy'"),
    ("no-signature", _with(**{"x-amz-signature": None}), {}, "InvalidArgument", "'x-amz-signature'"),
    ("both-versions", _with(signature="abc", AWSAccessKeyId="AKIDPOST"), {}, "InvalidArgument", "one auth"),
]


@pytest.mark.parametrize(("change", "kwargs", "code", "message"), [t[1:] for t in TAMPERED],
                         ids=[t[0] for t in TAMPERED])
def test_tampered_v4_forms(change: Callable[[dict[str, str]], dict[str, str]], kwargs: dict[str, Any], code: str,
                           message: str) -> None:
    with pytest.raises(S3Error) as info:
        verify(change(boto_form("s3v4")), **kwargs)
    assert info.value.code == code
    assert message in info.value.message


V2_TAMPERED: list[tuple[str, Callable[[dict[str, str]], dict[str, str]], str]] = [
    ("signature", _with(signature="AAAAAAAAAAAAAAAAAAAAAAAAAAA="), "SignatureDoesNotMatch"),
    ("policy-edited", _resigned_policy, "SignatureDoesNotMatch"),
    ("unknown-key", _with(AWSAccessKeyId="AKIDNOPE"), "InvalidAccessKeyId"),
    ("acl", _with(acl="public-read"), "AccessDenied"),
    ("no-signature", _with(signature=None), "InvalidArgument"),
]


@pytest.mark.parametrize(("change", "code"), [t[1:] for t in V2_TAMPERED], ids=[t[0] for t in V2_TAMPERED])
def test_tampered_v2_forms(change: Callable[[dict[str, str]], dict[str, str]], code: str) -> None:
    with pytest.raises(S3Error) as info:
        verify(change(boto_form("s3")))
    assert info.value.code == code


def test_ignored_fields_need_no_condition() -> None:
    assert verify({**boto_form("s3v4"), "x-ignore-tracking": "1", "file": "ignored"})[0] is not None


def test_anonymous_form() -> None:
    assert verify({"key": "k", "acl": "public-read"}) == (None, PolicyConditions(None, None))


def test_policy_without_credentials_is_refused() -> None:
    with pytest.raises(S3Error) as info:
        verify({"key": "k", "policy": "e30="})
    assert info.value.code == "InvalidArgument"


# --- malformed policies, correctly signed --------------------------------------------------------


def signed_form(policy_b64: str, **fields: str) -> dict[str, str]:
    amz_date = NOW.strftime("%Y%m%dT%H%M%SZ")
    key = sigv4.derive_signing_key(SECRETS["AKIDPOST"], amz_date[:8], "us-east-1")
    return {
        "key": "k",
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": f"AKIDPOST/{amz_date[:8]}/us-east-1/s3/aws4_request",
        "x-amz-date": amz_date,
        "policy": policy_b64,
        "x-amz-signature": sigv4.sign_string(key, policy_b64),
        **fields,
    }


def encoded(policy: object) -> str:
    return base64.b64encode(json.dumps(policy).encode()).decode()


def policy_for(*conditions: object, expiration: str | None = None) -> dict[str, object]:
    auth_conditions = [
        {"key": "k"},
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        ["starts-with", "$x-amz-credential", "AKIDPOST/"],
        ["starts-with", "$x-amz-date", ""],
    ]
    return {"expiration": expiration or (NOW + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "conditions": [*auth_conditions, *conditions]}


MALFORMED: list[tuple[str, str, str]] = [
    ("not-base64", "!!!", "InvalidPolicyDocument"),
    ("not-json", base64.b64encode(b"{nope").decode(), "InvalidPolicyDocument"),
    ("json-array", encoded([]), "InvalidPolicyDocument"),
    ("no-expiration", encoded({"conditions": []}), "InvalidPolicyDocument"),
    ("bad-expiration", encoded({"expiration": "tomorrow", "conditions": []}), "InvalidPolicyDocument"),
    ("no-conditions", encoded({"expiration": "2099-01-01T00:00:00Z"}), "InvalidPolicyDocument"),
    ("unknown-operator", encoded(policy_for(["matches", "$key", "k"])), "InvalidPolicyDocument"),
    ("field-without-dollar", encoded(policy_for(["eq", "key", "k"])), "InvalidPolicyDocument"),
    ("non-string-value", encoded(policy_for({"acl": 5})), "InvalidPolicyDocument"),
    ("range-not-numbers", encoded(policy_for(["content-length-range", "a", "b"])), "InvalidPolicyDocument"),
    ("range-inverted", encoded(policy_for(["content-length-range", 10, 1])), "InvalidPolicyDocument"),
    ("range-short", encoded(policy_for(["content-length-range", 10])), "InvalidPolicyDocument"),
    ("scalar-condition", encoded(policy_for("key")), "InvalidPolicyDocument"),
    ("expired-with-millis", encoded(policy_for(expiration="2001-01-01T00:00:00.000Z")), "AccessDenied"),
]


@pytest.mark.parametrize(("policy", "code"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_policies(policy: str, code: str) -> None:
    with pytest.raises(S3Error) as info:
        verify(signed_form(policy))
    assert info.value.code == code
    assert info.value.status in (400, 403)


def test_wrapped_base64_policy_is_accepted() -> None:
    policy = base64.encodebytes(json.dumps(policy_for(["content-length-range", 0, 10])).encode()).decode()
    assert "\n" in policy
    assert verify(signed_form(policy))[1].content_length_range == (0, 10)


def test_ranges_intersect() -> None:
    policy = encoded(policy_for(["content-length-range", 5, 100], ["content-length-range", 0, 50]))
    assert verify(signed_form(policy))[1].content_length_range == (5, 50)


def test_v2_signature_over_the_policy() -> None:
    policy = encoded({"expiration": "2099-01-01T00:00:00Z", "conditions": [{"key": "k"}]})
    form = {"key": "k", "AWSAccessKeyId": "AKIDPOST", "policy": policy,
            "signature": sigv2.sign_string(SECRETS["AKIDPOST"], policy)}
    auth, conditions = verify(form)
    assert auth is not None and auth.signing_key == b"" and conditions.content_length_range is None


SIZES: list[tuple[tuple[int, int] | None, int, bool, str | None]] = [
    ((1, 100), 50, True, None),
    ((1, 100), 1, True, None),
    ((1, 100), 100, True, None),
    ((1, 100), 101, True, "EntityTooLarge"),
    ((1, 100), 101, False, "EntityTooLarge"),
    ((1, 100), 0, True, "EntityTooSmall"),
    ((1, 100), 0, False, None),
    (None, 10**12, True, None),
]


@pytest.mark.parametrize(("length_range", "size", "complete", "code"), SIZES)
def test_check_size(length_range: tuple[int, int] | None, size: int, complete: bool, code: str | None) -> None:
    conditions = PolicyConditions(None, length_range)
    if code is None:
        conditions.check_size(size, complete=complete)
    else:
        with pytest.raises(S3Error) as info:
            conditions.check_size(size, complete=complete)
        assert info.value.code == code
        assert info.value.extra["ProposedSize"] == str(size)
