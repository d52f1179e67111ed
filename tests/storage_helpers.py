"""An S3-compatible server for the storage tests: moto's server mode in a subprocess on a free localhost
port (no network beyond localhost), and helpers to make buckets and read what was written."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

ACCESS_KEY_ID = "AKIAPORTALTEST0000001"
SECRET_ACCESS_KEY = "portal-test-secret/KEY+never-shown-0123456789"
REGION = "us-east-1"
# Keep boto3 away from the developer's ~/.aws and from the EC2 metadata service (network).
ISOLATED_AWS_ENV = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
AWS_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start ``python -m moto.server`` on 127.0.0.1 and yield its URL; stopped (and waited for) at the end."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **ISOLATED_AWS_ENV},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def s3_client(endpoint_url: str):
    import boto3

    return boto3.session.Session(
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY, region_name=REGION
    ).client("s3", endpoint_url=endpoint_url)


def new_bucket(endpoint_url: str) -> str:
    name = f"portal-{uuid.uuid4().hex[:16]}"
    s3_client(endpoint_url).create_bucket(Bucket=name)
    return name


def objects(endpoint_url: str, bucket: str) -> dict[str, bytes]:
    client = s3_client(endpoint_url)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


def open_multipart_uploads(endpoint_url: str, bucket: str) -> list[str]:
    uploads = s3_client(endpoint_url).list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [upload["Key"] for upload in uploads]
