"""``core.storage``: local paths pass through; S3 on a real S3 API server (moto) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from services import s3_server, use_s3

from searchrank.core import storage
from searchrank.core.errors import InputError
from searchrank.core.net import free_port

TABLE = pa.table({"user_id": [1, 2, 3], "score": [0.5, None, 2.0]})


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> str:
    return use_s3(monkeypatch, endpoint, "storage-tests")


def checkpoint_folder(root: Path) -> Path:
    """A folder shaped like a model checkpoint: files at two levels."""
    folder = root / "checkpoint"
    (folder / "weights").mkdir(parents=True)
    (folder / "config.json").write_text('{"d_model": 32}')
    (folder / "weights" / "model.pt").write_bytes(bytes(range(256)) * 40)
    return folder


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_local_paths_and_file_uris_pass_through(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    pq.write_table(TABLE, path)
    for uri in (str(path), path.as_uri()):
        fs, on_fs = storage.filesystem(uri)
        assert isinstance(fs, pafs.LocalFileSystem)
        assert on_fs == str(path)
        assert storage.parquet_dataset(uri).to_table().equals(TABLE)
        assert storage.require_readable(uri, "dataset").size == path.stat().st_size
        # Nothing is copied: the data is already here.
        assert storage.download(uri, tmp_path / "copy") == path
    assert not (tmp_path / "copy").exists()


@pytest.mark.services
def test_a_table_uploaded_to_s3_reads_back_equal(bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    pq.write_table(TABLE, path)
    uri = f"{bucket}/tables/table.parquet"
    assert storage.upload(path, uri) == uri
    info = storage.require_readable(uri, "dataset")
    assert info.type == pafs.FileType.File and info.size == path.stat().st_size
    assert storage.parquet_dataset(uri).to_table().equals(TABLE)
    assert storage.require_readable(f"{bucket}/tables", "dataset").type == pafs.FileType.Directory

    copy = storage.download(uri, tmp_path / "down" / "deep" / "table.parquet")
    assert copy == tmp_path / "down" / "deep" / "table.parquet"
    assert copy.read_bytes() == path.read_bytes()


@pytest.mark.services
def test_a_folder_round_trips_through_s3(bucket: str, tmp_path: Path) -> None:
    folder = checkpoint_folder(tmp_path)
    uri = f"{bucket}/models/ranker/v1"
    storage.upload(folder, uri)
    copy = storage.download(uri, tmp_path / "restored")
    assert tree(copy) == tree(folder)
    # A trailing slash names the same prefix.
    assert tree(storage.download(f"{uri}/", tmp_path / "again")) == tree(folder)


def test_upload_to_a_local_uri_creates_the_parents(tmp_path: Path) -> None:
    folder = checkpoint_folder(tmp_path)
    target = tmp_path / "out" / "models" / "v1"
    storage.upload(folder, target.as_uri())
    assert tree(target) == tree(folder)


@pytest.mark.parametrize("uri", ["gs://bucket/data.parquet", "https://example.com/data.parquet"])
def test_other_schemes_are_refused_by_name(uri: str) -> None:
    scheme = uri.split(":", 1)[0]
    with pytest.raises(InputError, match=f"scheme '{scheme}' is not supported") as error:
        storage.require_readable(uri, "dataset")
    assert error.value.field == "dataset" and error.value.value == uri
    assert "s3://bucket/key" in error.value.rule


def test_an_s3_uri_must_name_a_bucket() -> None:
    with pytest.raises(InputError, match="must name a bucket"):
        storage.filesystem("s3:///key")


@pytest.mark.parametrize(
    "unset", [[storage.ACCESS_KEY_ENV, storage.SECRET_KEY_ENV], [storage.SECRET_KEY_ENV]]
)
def test_missing_credentials_name_the_variables_to_set(
    bucket: str, monkeypatch: pytest.MonkeyPatch, unset: list[str]
) -> None:
    for name in unset:
        monkeypatch.delenv(name)
    uri = f"{bucket}/tables/table.parquet"
    with pytest.raises(InputError) as error:
        storage.require_readable(uri, "dataset")
    assert error.value.field == "dataset" and error.value.value == uri
    assert f"set {' and '.join(unset)} " in error.value.rule
    if storage.ACCESS_KEY_ENV not in unset:
        assert storage.ACCESS_KEY_ENV not in error.value.rule


@pytest.mark.services
def test_an_unreachable_endpoint_is_named(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv(storage.ENDPOINT_ENV, dead)
    uri = f"{bucket}/tables/table.parquet"
    with pytest.raises(InputError, match=f"endpoint {dead} is unreachable") as error:
        storage.require_readable(uri, "dataset")
    assert error.value.value == uri and storage.ENDPOINT_ENV in error.value.rule


def test_an_endpoint_without_a_scheme_is_refused(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(storage.ENDPOINT_ENV, "minio:9000")
    with pytest.raises(InputError, match="http:// or https://") as error:
        storage.parquet_dataset(f"{bucket}/tables/table.parquet")
    assert error.value.field == storage.ENDPOINT_ENV and error.value.value == "minio:9000"


@pytest.mark.services
@pytest.mark.parametrize("key", ["absent.parquet", "absent/folder"])
def test_a_missing_object_is_named(bucket: str, tmp_path: Path, key: str) -> None:
    uri = f"{bucket}/{key}"
    for call in (
        lambda: storage.require_readable(uri, "dataset"),
        lambda: storage.parquet_dataset(uri, "dataset"),
        lambda: storage.download(uri, tmp_path / "x", "dataset"),
    ):
        with pytest.raises(InputError, match="does not exist") as error:
            call()
        assert error.value.field == "dataset" and error.value.value == uri


@pytest.mark.services
def test_refused_credentials_name_the_variables_to_check(
    bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from moto import settings

    # moto checks signatures against its IAM users once this count of free calls is used up.
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    path = tmp_path / "table.parquet"
    pq.write_table(TABLE, path)
    uri = f"{bucket}/tables/table.parquet"
    for call in (
        lambda: storage.require_readable(uri, "dataset"),
        lambda: storage.upload(path, uri),
    ):
        with pytest.raises(InputError, match="refused the credentials") as error:
            call()
        assert storage.ACCESS_KEY_ENV in error.value.rule
        assert storage.SECRET_KEY_ENV in error.value.rule
