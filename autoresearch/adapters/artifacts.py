"""Where trial artifacts go: each trial's code bundle (keyed by its content hash) and its logs.

A local folder by default; any S3-compatible bucket (AWS, MinIO, Ceph...) through boto3 when
`AUTORESEARCH_ARTIFACTS_URL` is `s3://bucket/prefix`.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import urlparse

from autoresearch.errors import ConfigError, NotFound, StoreError
from autoresearch.settings import Settings


class ArtifactStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes:
        """NotFound when there is nothing under `key`."""
        ...

    def exists(self, key: str) -> bool: ...


class LocalArtifacts:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        pure = PurePosixPath(key)
        if pure.is_absolute() or ".." in pure.parts:
            raise ValueError(f"artifact key {key!r} leaves the store")
        return self.root / pure

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per writer: two trials with the same code put the same bundle at once.
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        partial = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), 0o644)  # as a plain write leaves it, not mkstemp's owner-only
                out.write(data)
            partial.replace(path)  # readers never see half an artifact
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no artifact {key!r} in {self.root}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class S3Artifacts:
    """A bucket (and key prefix) on any S3-compatible endpoint; credentials come the usual boto3 ways."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None) -> None:
        import boto3  # only deployments that use S3 pay for importing it

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise NotFound(f"no artifact {key!r} in s3://{self.bucket}/{self.prefix}") from None
        return body

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StoreError(f"s3://{self.bucket}/{self._key(key)}: {exc}") from exc
        return True


def open_artifacts(settings: Settings) -> ArtifactStore:
    url = settings.artifacts_url
    if not url:
        return LocalArtifacts(settings.data_dir / "artifacts")
    parsed = urlparse(url)
    if parsed.scheme == "s3" and parsed.netloc:
        return S3Artifacts(parsed.netloc, parsed.path, settings.s3_endpoint_url)
    if parsed.scheme == "file" or not parsed.scheme:
        return LocalArtifacts(Path(parsed.path or url).expanduser())
    raise ConfigError(f"AUTORESEARCH_ARTIFACTS_URL {url!r}: use s3://BUCKET/PREFIX or a folder")


def code_bundle(code: Mapping[str, str]) -> bytes:
    """The code as a tar.gz whose bytes depend on the code alone (sorted, no times or owners)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(code):
            data = code[path].encode()
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    return raw[:4] + b"\0\0\0\0" + raw[8:]  # the gzip header's timestamp


def read_bundle(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def bundle_key(code_hash: str) -> str:
    return f"code/{code_hash}.tar.gz"


def trial_key(campaign_id: int, number: int, name: str) -> str:
    return f"trials/{campaign_id}/{number:05d}/{name}"
