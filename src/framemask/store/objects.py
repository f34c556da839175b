"""Object storage: one small protocol, a local-directory backend and an S3-compatible backend.

Everything that stores bytes (uploads, processed videos, thumbnails, RTSP recordings) goes through
`ObjectStore`, so the embedded default (a directory) and production (MinIO, AWS S3, radosgw) share
one code path. Writes are streamed: `open_write` never holds a whole object in memory (S3 uses a
multipart upload with bounded part buffers) and only publishes the object when the `with` block ends
cleanly; an exception aborts it, so a failed write never leaves a partial object behind.

Keys are `/`-separated relative names; `..`, empty segments, absolute paths and NUL are refused
(`InputError`), and the local backend additionally checks that the resolved path stays inside its root.
Byte ranges in `open_read` are half-open: `start` inclusive, `end` exclusive (like Python slices).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast, runtime_checkable
from urllib.parse import urlparse

from framemask.errors import FramemaskError, InputError, NotFoundError, StorageError

if TYPE_CHECKING:
    from framemask.settings import Settings

__all__ = [
    "LocalStore",
    "ObjectStore",
    "S3Store",
    "delete_prefix",
    "open_store",
    "parse_target",
    "validate_key",
]

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PARTIAL_SUFFIX = ".part"
_COPY_CHUNK = 1024 * 1024


@runtime_checkable
class ObjectStore(Protocol):
    """Where framemask keeps bytes: buckets of keyed objects."""

    def ensure_bucket(self, bucket: str) -> None: ...
    def put_file(self, bucket: str, key: str, path: Path) -> None: ...
    def get_file(self, bucket: str, key: str, path: Path) -> None: ...
    def open_write(self, bucket: str, key: str) -> AbstractContextManager[BinaryIO]: ...
    def open_read(
        self, bucket: str, key: str, start: int = 0, end: int | None = None
    ) -> AbstractContextManager[BinaryIO]: ...
    def size(self, bucket: str, key: str) -> int: ...
    def exists(self, bucket: str, key: str) -> bool: ...
    def delete(self, bucket: str, key: str) -> None: ...
    def list(self, bucket: str, prefix: str = "") -> list[str]: ...
    def presign_get(self, bucket: str, key: str, expires: int = 300, cache_control: str | None = None) -> str | None:
        """A URL that GETs the object until `expires` seconds from now, its response sent with `cache_control`
        (so an original fetched from S3 is `no-store` like one sent by the API); None if the store has none."""
        ...

    def local_path(self, bucket: str, key: str) -> Path | None: ...


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative object name, else raise `InputError`."""
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise InputError(f"invalid object key {key!r}: empty or longer than 1024 characters")
    if "\x00" in key or "\\" in key or key.startswith("/"):
        raise InputError(f"invalid object key {key!r}: absolute path, backslash or NUL")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InputError(f"invalid object key {key!r}: empty, '.' or '..' path segment")
    return key


def _validate_bucket(bucket: str, *, allow_root: bool = False) -> str:
    if allow_root and bucket == "":
        return bucket
    if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise InputError(f"invalid bucket name {bucket!r}")
    return bucket


def _check_range(start: int, end: int | None, size: int) -> tuple[int, int]:
    stop = size if end is None else end
    if start < 0 or stop < start or stop > size:
        raise InputError(f"byte range {start}-{end} outside object of {size} bytes")
    return start, stop


class _LimitedReader(io.RawIOBase):
    """A raw reader over `[pos, stop)` of an open file."""

    def __init__(self, fh: io.BufferedIOBase | io.RawIOBase, stop: int) -> None:
        super().__init__()
        self._fh = fh
        self._left = stop - fh.tell()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._left)
        if want <= 0:
            return 0
        got = self._fh.readinto(view[:want])
        self._left -= got or 0
        return got or 0

    def close(self) -> None:
        self._fh.close()
        super().close()


def _is_partial(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return name.startswith(".") and name.endswith(_PARTIAL_SUFFIX)


class LocalStore:
    """Objects as files under `root/<bucket>/<key>`; writes land atomically via a rename."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, bucket: str, key: str) -> Path:
        _validate_bucket(bucket, allow_root=True)
        validate_key(key)
        base = (self.root / bucket).resolve() if bucket else self.root
        path = (base / key).resolve()
        if not path.is_relative_to(base) or path == base:
            raise InputError(f"object key {key!r} escapes bucket {bucket!r}")
        return path

    def ensure_bucket(self, bucket: str) -> None:
        _validate_bucket(bucket, allow_root=True)
        (self.root / bucket).mkdir(parents=True, exist_ok=True)

    def put_file(self, bucket: str, key: str, path: Path) -> None:
        with open(path, "rb") as src, self.open_write(bucket, key) as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)

    def adopt_file(self, bucket: str, key: str, path: Path) -> None:
        """Move a local file in as the object (a rename on the same filesystem, else a copy)."""
        final = self._path(bucket, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, final)
        except OSError:
            self.put_file(bucket, key, path)
            Path(path).unlink(missing_ok=True)

    def get_file(self, bucket: str, key: str, path: Path) -> None:
        src = self._existing(bucket, key)
        tmp = Path(path).with_name(f".{Path(path).name}.{uuid.uuid4().hex}.part")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @contextmanager
    def open_write(self, bucket: str, key: str) -> Iterator[BinaryIO]:
        final = self._path(bucket, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}{_PARTIAL_SUFFIX}")
        try:
            with open(tmp, "wb") as fh:
                yield cast(BinaryIO, fh)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    @contextmanager
    def open_read(self, bucket: str, key: str, start: int = 0, end: int | None = None) -> Iterator[BinaryIO]:
        path = self._existing(bucket, key)
        fh = open(path, "rb")  # noqa: SIM115 - closed by the reader below
        try:
            first, stop = _check_range(start, end, os.fstat(fh.fileno()).st_size)
            fh.seek(first)
        except BaseException:
            fh.close()
            raise
        reader = io.BufferedReader(_LimitedReader(fh, stop), _COPY_CHUNK)
        with reader:
            yield cast(BinaryIO, reader)

    def _existing(self, bucket: str, key: str) -> Path:
        path = self._path(bucket, key)
        if not path.is_file():
            raise NotFoundError(f"no object {bucket}/{key}")
        return path

    def size(self, bucket: str, key: str) -> int:
        return self._existing(bucket, key).stat().st_size

    def exists(self, bucket: str, key: str) -> bool:
        return self._path(bucket, key).is_file()

    def delete(self, bucket: str, key: str) -> None:
        path = self._path(bucket, key)
        path.unlink(missing_ok=True)
        self._prune_empty_dirs(path.parent, (self.root / bucket).resolve() if bucket else self.root)

    @staticmethod
    def _prune_empty_dirs(start: Path, stop: Path) -> None:
        current = start
        while current != stop and current.is_relative_to(stop):
            try:
                current.rmdir()
            except OSError:
                return
            current = current.parent

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        _validate_bucket(bucket, allow_root=True)
        base = (self.root / bucket).resolve() if bucket else self.root
        if not base.is_dir():
            return []
        keys = (p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not _is_partial(k))

    def presign_get(self, bucket: str, key: str, expires: int = 300, cache_control: str | None = None) -> str | None:
        return None

    def local_path(self, bucket: str, key: str) -> Path | None:
        return self._path(bucket, key)


@contextmanager
def _map_s3_errors(what: str) -> Iterator[None]:
    """Translate botocore errors into the framemask tree, in one place."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        if code in {"NoSuchKey", "404", "NotFound", "NoSuchBucket", "NoSuchUpload"}:
            raise NotFoundError(f"{what}: not found ({code})") from exc
        if code in {"InvalidRange", "416"}:
            raise InputError(f"{what}: invalid byte range") from exc
        raise StorageError(f"{what}: {code} {err.get('Message', '')}".strip()) from exc
    except BotoCoreError as exc:
        raise StorageError(f"{what}: {exc}") from exc


class _MultipartWriter(io.RawIOBase):
    """A write-only stream that uploads fixed-size parts as they fill (memory ~ one part)."""

    def __init__(self, client: Any, bucket: str, key: str, part_size: int) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key
        self._part_size = part_size
        self._buf = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self._written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        self._written += size
        while len(view):
            room = self._part_size - len(self._buf)
            self._buf += view[:room]
            view = view[room:]
            if len(self._buf) >= self._part_size:
                self._send_part()
        return size

    def _send_part(self) -> None:
        what = f"upload part of s3://{self._bucket}/{self._key}"
        with _map_s3_errors(what):
            if self._upload_id is None:
                created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            resp = self._client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=bytes(self._buf),
            )
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})
        self._buf.clear()

    def finish(self) -> None:
        """Publish the object: one PUT if it fit in a part, else complete the multipart upload."""
        what = f"finish s3://{self._bucket}/{self._key}"
        if self._upload_id is None:
            with _map_s3_errors(what):
                self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buf))
            return
        if self._buf:
            self._send_part()
        with _map_s3_errors(what):
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )

    def abort(self) -> None:
        """Drop the buffered bytes and any uploaded parts."""
        self._buf.clear()
        if self._upload_id is not None:
            with _map_s3_errors(f"abort s3://{self._bucket}/{self._key}"):
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)


class S3Store:
    """Objects in any S3-compatible server (AWS S3, MinIO, Ceph radosgw) through boto3."""

    def __init__(
        self,
        endpoint: str | None,
        access_key: str | None,
        secret_key: str | None,
        region: str = "us-east-1",
        *,
        public_endpoint: str | None = None,
        part_size: int = 8 * 1024 * 1024,
    ) -> None:
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 multipart parts must be at least 5 MiB")
        self.endpoint = endpoint
        self.part_size = part_size
        self._client = self._make_client(endpoint, access_key, secret_key, region)
        self._signer = (
            self._make_client(public_endpoint, access_key, secret_key, region) if public_endpoint else self._client
        )

    def __repr__(self) -> str:
        return f"S3Store({self.endpoint!r})"

    @staticmethod
    def _make_client(endpoint: str | None, access: str | None, secret: str | None, region: str) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 4, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
            max_pool_connections=32,
        )
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            region_name=region,
            config=config,
        )

    def ensure_bucket(self, bucket: str) -> None:
        _validate_bucket(bucket)
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=bucket)
            return
        except ClientError:
            pass
        with _map_s3_errors(f"create bucket {bucket}"):
            try:
                self._client.create_bucket(Bucket=bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in {
                    "BucketAlreadyOwnedByYou",
                    "BucketAlreadyExists",
                }:
                    raise

    def _checked(self, bucket: str, key: str) -> None:
        _validate_bucket(bucket)
        validate_key(key)

    def put_file(self, bucket: str, key: str, path: Path) -> None:
        from boto3.s3.transfer import TransferConfig

        self._checked(bucket, key)
        config = TransferConfig(multipart_threshold=self.part_size, multipart_chunksize=self.part_size)
        with _map_s3_errors(f"put s3://{bucket}/{key}"):
            self._client.upload_file(str(path), bucket, key, Config=config)

    def get_file(self, bucket: str, key: str, path: Path) -> None:
        self._checked(bucket, key)
        tmp = Path(path).with_name(f".{Path(path).name}.{uuid.uuid4().hex}.part")
        try:
            with _map_s3_errors(f"get s3://{bucket}/{key}"):
                self._client.download_file(bucket, key, str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @contextmanager
    def open_write(self, bucket: str, key: str) -> Iterator[BinaryIO]:
        self._checked(bucket, key)
        writer = _MultipartWriter(self._client, bucket, key, self.part_size)
        try:
            yield cast(BinaryIO, writer)
        except BaseException:
            with suppress(FramemaskError):  # the original error matters more
                writer.abort()
            raise
        writer.finish()

    @contextmanager
    def open_read(self, bucket: str, key: str, start: int = 0, end: int | None = None) -> Iterator[BinaryIO]:
        self._checked(bucket, key)
        what = f"read s3://{bucket}/{key}"
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if start or end is not None:
            _check_range(start, end, self.size(bucket, key))
            if end == start:
                yield cast(BinaryIO, io.BytesIO(b""))
                return
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        with _map_s3_errors(what):
            body = self._client.get_object(**args)["Body"]
        try:
            yield cast(BinaryIO, body)
        finally:
            body.close()

    def size(self, bucket: str, key: str) -> int:
        self._checked(bucket, key)
        with _map_s3_errors(f"head s3://{bucket}/{key}"):
            return int(self._client.head_object(Bucket=bucket, Key=key)["ContentLength"])

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.size(bucket, key)
        except NotFoundError:
            return False
        return True

    def delete(self, bucket: str, key: str) -> None:
        self._checked(bucket, key)
        with _map_s3_errors(f"delete s3://{bucket}/{key}"):
            self._client.delete_object(Bucket=bucket, Key=key)

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        _validate_bucket(bucket)
        keys: list[str] = []
        with _map_s3_errors(f"list s3://{bucket}/{prefix}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)

    def presign_get(self, bucket: str, key: str, expires: int = 300, cache_control: str | None = None) -> str | None:
        self._checked(bucket, key)
        params = {"Bucket": bucket, "Key": key}
        if cache_control:  # signed into the URL: S3 answers with this Cache-Control (response-cache-control)
            params["ResponseCacheControl"] = cache_control
        with _map_s3_errors(f"presign s3://{bucket}/{key}"):
            return str(self._signer.generate_presigned_url("get_object", Params=params, ExpiresIn=int(expires)))

    def local_path(self, bucket: str, key: str) -> Path | None:
        return None


def delete_prefix(store: ObjectStore, bucket: str, prefix: str) -> int:
    """Delete every object under `prefix`; returns how many were removed."""
    if not prefix:
        raise InputError("refusing to delete a whole bucket (empty prefix)")
    keys = store.list(bucket, prefix)
    for key in keys:
        store.delete(bucket, key)
    return len(keys)


def open_store(settings: Settings) -> ObjectStore:
    """The configured store: S3 when `s3_endpoint` is set, else a directory under the data dir."""
    if settings.s3_endpoint:
        secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None
        return S3Store(
            settings.s3_endpoint,
            settings.s3_access_key,
            secret,
            settings.s3_region,
            public_endpoint=settings.s3_public_endpoint,
            part_size=settings.s3_part_mb * 1024 * 1024,
        )
    return LocalStore(settings.objects_dir)


def parse_target(url_or_path: str | Path, settings: Settings | None = None) -> tuple[ObjectStore, str, str]:
    """Resolve `s3://bucket/key` (the configured store) or a local file path to (store, bucket, key).

    `s3://` targets use whatever store `settings` configure (the caller's: library code never reads the
    environment), so an embedded install records to `<data_dir>/objects/<bucket>/<key>`; a plain path
    becomes a `LocalStore` rooted at its directory.
    """
    text = str(url_or_path)
    if text.startswith("s3://"):
        parsed = urlparse(text)
        bucket, key = parsed.netloc, parsed.path.lstrip("/")
        _validate_bucket(bucket)
        validate_key(key)
        if settings is None:
            raise InputError(f"{text}: an s3:// target needs the service settings (FRAMEMASK_*) to find the store")
        store = open_store(settings)
        store.ensure_bucket(bucket)
        return store, bucket, key
    if "://" in text:
        raise InputError(f"unsupported storage URL {text!r} (use s3://bucket/key or a file path)")
    path = Path(text).expanduser().resolve()
    if not path.name:
        raise InputError(f"not a file path: {text!r}")
    return LocalStore(path.parent), "", path.name
