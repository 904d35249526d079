"""An S3 client from boto3's standard chain, and the mapping of its failures onto our errors.

Credentials are never passed in or printed: boto3 finds them (``AWS_ACCESS_KEY_ID``/
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, config files, instance roles). The endpoint comes from
the plan (``endpointURL`` of the ObjectStore) or ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import os
from typing import Any

from consolidator.errors import ConnectionFailure

# Codes meaning "these credentials are not accepted here" rather than "this check failed".
AUTH_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken",
    "TokenRefreshRequired", "InvalidClientTokenId", "AuthorizationHeaderMalformed", "InvalidSecurity",
    "UnrecognizedClientException", "403", "Forbidden",
})  # fmt: skip
NOT_FOUND_CODES = frozenset({"NoSuchBucket", "404", "NotFound", "NoSuchKey"})
CREDENTIALS_HINT = ("check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE: the same keys as the "
                    "backup credentials Secret")  # fmt: skip


def endpoint_url(plan_endpoint: str | None) -> str | None:
    """The plan's endpoint first (it is what the cluster will use), then the environment's."""
    return plan_endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def describe_endpoint(endpoint: str | None) -> str:
    return endpoint or "the default AWS S3 endpoint"


def s3_client(endpoint: str | None, credentials: tuple[str, str] | None = None) -> Any:
    """A client with short timeouts and few retries: a check should fail in seconds, not minutes.

    Path-style addressing on custom endpoints: Ceph RGW and MinIO rarely have wildcard DNS.
    ``credentials``: (access key id, secret key) to use instead of boto3's usual lookup.
    """
    import boto3
    from botocore.config import Config

    keys = {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]} if credentials else {}
    session = boto3.session.Session(**keys)
    config = Config(
        connect_timeout=5, read_timeout=60, retries={"max_attempts": 2, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else {},
    )  # fmt: skip
    return session.client("s3", endpoint_url=endpoint, region_name=session.region_name or "us-east-1",
                          config=config)  # fmt: skip


def error_code(exc: BaseException) -> str:
    """The S3 error code of a ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def connection_failure(exc: BaseException, where: str, endpoint: str | None) -> ConnectionFailure | None:
    """A ``ConnectionFailure`` naming ``where`` when ``exc`` means unreachable or not authenticated."""
    from botocore import exceptions as boto_errors

    at = describe_endpoint(endpoint)
    if isinstance(exc, boto_errors.NoCredentialsError | boto_errors.PartialCredentialsError):
        return ConnectionFailure(f"no S3 credentials found for {where} at {at}", hint=CREDENTIALS_HINT)
    if isinstance(exc, boto_errors.ConnectionError):
        return ConnectionFailure(f"cannot reach {at} for {where}: {type(exc).__name__}",
                                 hint="check the endpoint (--backup-endpoint or AWS_ENDPOINT_URL) and the network")
    code = error_code(exc)
    if code in AUTH_CODES:
        return ConnectionFailure(f"S3 credentials rejected for {where} at {at} ({code})", hint=CREDENTIALS_HINT)
    if isinstance(exc, boto_errors.BotoCoreError):
        return ConnectionFailure(f"S3 request for {where} at {at} failed: {type(exc).__name__}",
                                 hint="check the endpoint and the network")  # fmt: skip
    return None
