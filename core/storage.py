"""Object storage: the one place that opens the URIs of the files and folders searchrank reads.

A URI is a local path, a ``file://`` URI or ``s3://bucket/key`` (AWS S3, or an S3-compatible
store such as MinIO behind ``AWS_ENDPOINT_URL``). S3 goes through pyarrow's built-in
filesystem: the image has it, whereas DuckDB's ``httpfs`` extension would be downloaded at run
time, which a pod without egress cannot do. Its settings come from the standard AWS variables,
which the cluster's object-store secret and storage config map provide
(:mod:`searchrank.core.names`). Other schemes are refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pyarrow.dataset as ds
import pyarrow.fs as pafs

from searchrank.core.errors import InputError
from searchrank.core.names import (
    OBJECT_STORE_SECRET,
    OBJECT_STORE_SECRET_ENV,
    STORAGE_CONFIG_ENV,
    STORAGE_CONFIG_MAP,
)

ACCESS_KEY_ENV = OBJECT_STORE_SECRET_ENV["access-key-id"]
SECRET_KEY_ENV = OBJECT_STORE_SECRET_ENV["secret-access-key"]
SESSION_TOKEN_ENV = "AWS_SESSION_TOKEN"
"""Optional: the session token that goes with temporary credentials."""
ENDPOINT_ENV = STORAGE_CONFIG_ENV["endpoint-url"]
REGION_ENV = STORAGE_CONFIG_ENV["region"]
DEFAULT_REGION = "us-east-1"
TIMEOUT_S = 5.0
"""Connect and request timeout of each S3 call, so a wrong endpoint fails within seconds."""
S3_SCHEME = "s3"


def local_path(uri: str) -> Path | None:
    """The local path that ``uri`` names (a plain path or ``file://``), or None for a remote URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    return Path(uri) if not parsed.scheme else None


def filesystem(uri: str, field: str = "uri") -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``uri`` and the path of ``uri`` on it.

    Args:
        uri: a local path, a ``file://`` URI or ``s3://bucket/key``.
        field: what ``uri`` is, for error messages (a parameter or configuration key).

    Returns:
        ``(LocalFileSystem, path)`` for local URIs, ``(S3FileSystem, "bucket/key")`` for S3.

    Raises:
        InputError: an unsupported scheme, an S3 URI without a bucket, missing S3 credentials
            (naming the variables to set) or a malformed endpoint URL.
    """
    local = local_path(uri)
    if local is not None:
        return pafs.LocalFileSystem(), str(local)
    parsed = urlparse(uri)
    if parsed.scheme != S3_SCHEME:
        raise InputError(
            field,
            uri,
            f"the scheme {parsed.scheme!r} is not supported: use a local path, a file:// URI or "
            "s3://bucket/key (S3 or an S3-compatible store)",
        )
    if not parsed.netloc:
        raise InputError(field, uri, "must name a bucket: s3://bucket/key")
    return _s3(uri, field), f"{parsed.netloc}{parsed.path}".rstrip("/")


def _s3(uri: str, field: str) -> pafs.S3FileSystem:
    missing = [name for name in (ACCESS_KEY_ENV, SECRET_KEY_ENV) if not os.environ.get(name)]
    if missing:
        # Explicit keys only: without them the AWS SDK would also probe ~/.aws and the EC2
        # metadata service, which hangs for seconds off EC2 and then fails without a reason.
        raise InputError(
            field,
            uri,
            f"S3 needs credentials: set {' and '.join(missing)} "
            f"(the secret {OBJECT_STORE_SECRET} on the cluster)",
        )
    endpoint = os.environ.get(ENDPOINT_ENV, "")
    parsed = urlparse(endpoint)
    if endpoint and (parsed.scheme not in {"http", "https"} or not parsed.netloc):
        raise InputError(
            ENDPOINT_ENV,
            endpoint,
            "must be an http:// or https:// URL such as http://minio:9000, or empty for AWS "
            f"(the config map {STORAGE_CONFIG_MAP} on the cluster)",
        )
    return pafs.S3FileSystem(
        access_key=os.environ[ACCESS_KEY_ENV],
        secret_key=os.environ[SECRET_KEY_ENV],
        session_token=os.environ.get(SESSION_TOKEN_ENV) or None,
        region=os.environ.get(REGION_ENV) or DEFAULT_REGION,
        endpoint_override=endpoint or None,
        connect_timeout=TIMEOUT_S,
        request_timeout=TIMEOUT_S,
    )


def _diagnosis(error: OSError) -> str | None:
    """What to check for a failed S3 call, or None when the error is not a configuration one."""
    message = str(error)
    if isinstance(error, FileNotFoundError):
        return "does not exist"
    if "NETWORK_CONNECTION" in message:
        endpoint = os.environ.get(ENDPOINT_ENV) or "AWS S3"
        return (
            f"the S3 endpoint {endpoint} is unreachable: check {ENDPOINT_ENV} "
            f"(the config map {STORAGE_CONFIG_MAP}) and that the store is up ({message})"
        )
    if "ACCESS_DENIED" in message or "INVALID_ACCESS_KEY_ID" in message:
        return (
            f"S3 refused the credentials: check {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} "
            f"(the secret {OBJECT_STORE_SECRET}) and the bucket's policy ({message})"
        )
    return None


@contextmanager
def _reported(uri: str, field: str) -> Iterator[None]:
    """Turn the S3 errors that bad configuration causes into InputErrors saying what to check."""
    try:
        yield
    except OSError as error:
        diagnosis = _diagnosis(error)
        if diagnosis is None:
            raise
        raise InputError(field, uri, diagnosis) from error


def _located(uri: str, field: str) -> tuple[pafs.FileSystem, str, pafs.FileInfo]:
    fs, path = filesystem(uri, field)
    with _reported(uri, field):
        info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise InputError(field, uri, "does not exist")
    return fs, path, info


def require_readable(uri: str, field: str) -> pafs.FileInfo:
    """Check that ``uri`` names an existing file or folder (S3: object or prefix) one can read.

    Args:
        uri: a local path, a ``file://`` URI or ``s3://bucket/key``.
        field: what ``uri`` is, for error messages.

    Returns:
        What the filesystem knows of it (``type``: File or Directory; ``size`` for files).

    Raises:
        InputError: what :func:`filesystem` raises; the object does not exist; the endpoint is
            unreachable (naming it); the credentials are refused.
    """
    return _located(uri, field)[2]


def download(uri: str, dest: Path, field: str = "uri") -> Path:
    """Make the file or folder at ``uri`` available on this machine.

    Args:
        uri: a file or a folder (S3: an object or a prefix, copied with everything below it).
        dest: where a remote file or folder is copied to (its parents are created).
        field: what ``uri`` is, for error messages.

    Returns:
        The local path of the data: ``uri`` itself when it is local (nothing is copied), else
        ``dest``.

    Raises:
        InputError: see :func:`require_readable`.
    """
    fs, path, info = _located(uri, field)
    local = local_path(uri)
    if local is not None:
        return local
    dest.parent.mkdir(parents=True, exist_ok=True)
    if info.type == pafs.FileType.Directory:
        dest.mkdir(exist_ok=True)
    with _reported(uri, field):
        pafs.copy_files(path, str(dest), source_filesystem=fs)
    return dest


def upload(path: Path, uri: str, field: str = "uri") -> str:
    """Copy a local file or folder (with everything below it) to ``uri``.

    Args:
        path: an existing local file or folder.
        uri: the destination: a local path, ``file://`` or ``s3://bucket/key`` (the bucket must
            exist).
        field: what ``uri`` is, for error messages.

    Returns:
        ``uri``.

    Raises:
        InputError: ``path`` does not exist; what :func:`filesystem` raises; the endpoint is
            unreachable or refuses the credentials.
    """
    if not path.exists():
        raise InputError("path", str(path), "must be an existing file or folder to upload")
    fs, target = filesystem(uri, field)
    if isinstance(fs, pafs.LocalFileSystem):
        # S3 has no folders to create; a local destination's parents must exist.
        fs.create_dir(str(Path(target).parent))
    with _reported(uri, field):
        pafs.copy_files(str(path), target, destination_filesystem=fs)
    return uri


def parquet_dataset(uri: str, field: str = "uri") -> ds.Dataset:
    """A lazy parquet dataset over a file or a folder of files, local or remote.

    Scans read only the row groups and columns they need, so DuckDB (``con.register``) pushes
    its filters and projections down to it.

    Raises:
        InputError: see :func:`require_readable`.
    """
    fs, path, _ = _located(uri, field)
    with _reported(uri, field):
        return ds.dataset(path, filesystem=fs, format="parquet")
