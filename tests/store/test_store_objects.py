"""One conformance suite for every ObjectStore backend: a directory and a real S3 server (radosgw)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from framemask.errors import InputError, NotFoundError
from framemask.settings import Settings
from framemask.store.objects import LocalStore, ObjectStore, S3Store, delete_prefix, parse_target

MIB = 1024 * 1024


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.services)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        backend: ObjectStore = LocalStore(tmp_path / "objects")
    else:
        s3 = request.getfixturevalue("rgw_server")
        backend = S3Store(s3.endpoint, s3.access_key, s3.secret_key, part_size=5 * MIB)
    backend.ensure_bucket("raw")
    for key in backend.list("raw"):
        backend.delete("raw", key)
    return backend


def test_streamed_write_read_ranges_list_delete(store: ObjectStore) -> None:
    data = os.urandom(11 * MIB + 17)  # three S3 parts at 5 MiB
    with store.open_write("raw", "videos/a/original.bin") as fh:
        for offset in range(0, len(data), 300_001):
            fh.write(data[offset : offset + 300_001])
    assert store.size("raw", "videos/a/original.bin") == len(data)
    assert store.exists("raw", "videos/a/original.bin")
    with store.open_read("raw", "videos/a/original.bin") as fh:
        assert fh.read() == data
    with store.open_read("raw", "videos/a/original.bin", 5 * MIB - 3, 5 * MIB + 5) as fh:
        assert fh.read() == data[5 * MIB - 3 : 5 * MIB + 5]
    with store.open_read("raw", "videos/a/original.bin", len(data) - 4) as fh:
        assert fh.read() == data[-4:]
    with store.open_write("raw", "videos/b/tiny") as fh:
        fh.write(b"x")
    assert store.list("raw") == ["videos/a/original.bin", "videos/b/tiny"]
    assert store.list("raw", "videos/b/") == ["videos/b/tiny"]
    assert delete_prefix(store, "raw", "videos/a/") == 1
    assert store.list("raw") == ["videos/b/tiny"]
    store.delete("raw", "videos/b/tiny")
    assert store.list("raw") == []


def test_failed_write_leaves_nothing(store: ObjectStore) -> None:
    with pytest.raises(RuntimeError), store.open_write("raw", "broken.bin") as fh:
        fh.write(os.urandom(6 * MIB))  # at least one S3 part already uploaded
        raise RuntimeError("connection dropped")
    assert store.list("raw") == []
    assert not store.exists("raw", "broken.bin")
    if isinstance(store, S3Store):
        assert not store._client.list_multipart_uploads(Bucket="raw").get("Uploads")


def test_overwrite_is_atomic(store: ObjectStore) -> None:
    with store.open_write("raw", "k") as fh:
        fh.write(b"first")
    with pytest.raises(ValueError), store.open_write("raw", "k") as fh:
        fh.write(b"second-partial")
        raise ValueError
    with store.open_read("raw", "k") as fh:
        assert fh.read() == b"first"


def test_put_and_get_file(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(6 * MIB + 1))
    store.put_file("raw", "f/src.bin", src)
    dst = tmp_path / "dst.bin"
    store.get_file("raw", "f/src.bin", dst)
    assert dst.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../b", "a\x00b", "", "a//b", "a\\b", "."])
def test_bad_keys_rejected(store: ObjectStore, key: str) -> None:
    with pytest.raises(InputError):
        store.exists("raw", key)
    with pytest.raises(InputError), store.open_write("raw", key):
        pass


def test_missing_object_and_bad_range(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError):
        store.size("raw", "missing")
    with pytest.raises(NotFoundError), store.open_read("raw", "missing"):
        pass
    with store.open_write("raw", "ten") as fh:
        fh.write(b"0123456789")
    with pytest.raises(InputError), store.open_read("raw", "ten", 5, 11):
        pass
    with pytest.raises(InputError), store.open_read("raw", "ten", 6, 5):
        pass
    store.delete("raw", "missing")  # deleting what is gone is fine


def test_local_store_containment(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    store.ensure_bucket("raw")
    (tmp_path / "root" / "raw").mkdir(exist_ok=True)
    (tmp_path / "root" / "raw" / "link").symlink_to(tmp_path)
    with pytest.raises(InputError):
        store.exists("raw", "link/secret")
    assert store.presign_get("raw", "x") is None
    assert store.local_path("raw", "a/b") == (tmp_path / "root" / "raw" / "a" / "b").resolve()


def test_parse_target(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store, bucket, key = parse_target("s3://recordings/cam1/2024.mkv", settings)
    assert isinstance(store, LocalStore) and (bucket, key) == ("recordings", "cam1/2024.mkv")
    with store.open_write(bucket, key) as fh:
        fh.write(b"abc")
    assert (tmp_path / "objects" / "recordings" / "cam1" / "2024.mkv").read_bytes() == b"abc"
    store, bucket, key = parse_target(tmp_path / "out" / "rec.mp4", settings)
    with store.open_write(bucket, key) as fh:
        fh.write(b"xyz")
    assert (tmp_path / "out" / "rec.mp4").read_bytes() == b"xyz"
    for bad in ["s3://raw/../x", "s3://Bad_Bucket/x", "http://host/x"]:
        with pytest.raises(InputError):
            parse_target(bad, settings)


@pytest.mark.services
def test_s3_presigned_url_works_then_expires(rgw_server, tmp_path: Path) -> None:
    store = S3Store(rgw_server.endpoint, rgw_server.access_key, rgw_server.secret_key)
    store.ensure_bucket("raw")
    with store.open_write("raw", "p/obj") as fh:
        fh.write(b"presigned-bytes")
    url = store.presign_get("raw", "p/obj", expires=2)
    assert url is not None
    request = urllib.request.Request(url, headers={"Range": "bytes=0-8"})
    with urllib.request.urlopen(request) as resp:
        assert resp.status == 206 and resp.read() == b"presigned"
    import time

    time.sleep(3.5)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url)
    assert info.value.code == 403


@pytest.mark.services
def test_s3_presigned_url_carries_cache_control(rgw_server) -> None:
    """An original handed out as a presigned URL is sent `no-store` by S3 itself, like the API sends it."""
    store = S3Store(rgw_server.endpoint, rgw_server.access_key, rgw_server.secret_key)
    store.ensure_bucket("raw")
    with store.open_write("raw", "p/private") as fh:
        fh.write(b"personal")
    url = store.presign_get("raw", "p/private", expires=60, cache_control="private, no-store")
    assert url is not None
    with urllib.request.urlopen(url) as resp:
        assert resp.read() == b"personal" and resp.headers["Cache-Control"] == "private, no-store"
    plain = store.presign_get("raw", "p/private", expires=60)
    assert plain is not None
    with urllib.request.urlopen(plain) as resp:
        assert resp.headers.get("Cache-Control") != "private, no-store"
    tampered = url.replace("no-store", "max-age%3D3600").replace("no-store", "max-age=3600")
    with pytest.raises(urllib.error.HTTPError) as info:  # the header is part of the signature
        urllib.request.urlopen(tampered)
    assert info.value.code == 403


@pytest.mark.services
def test_s3_wrong_secret_rejected(rgw_server) -> None:
    from framemask.errors import StorageError

    store = S3Store(rgw_server.endpoint, rgw_server.access_key, "not-the-secret")
    with pytest.raises(StorageError):
        store.list("raw")
