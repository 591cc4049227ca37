"""Open, create and fill Feast feature repositories built from ``features/``.

``features/`` itself is a working Feast repository (``feast apply`` works there) whose data
lives in ``features/data``. Pipelines, tests and the demo create repositories elsewhere with
:func:`create_repo`: the same ``feature_store.yaml`` template pointed at another data folder,
with its own registry and online store, so runs never share state by accident.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from searchrank.core.errors import InputError
from searchrank.core.names import (
    OBJECT_STORE_SECRET,
    OBJECT_STORE_SECRET_ENV,
    ONLINE_STORE_SECRET,
    ONLINE_STORE_SECRET_ENV,
    STORAGE_CONFIG_ENV,
    STORAGE_CONFIG_MAP,
)

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

REPO_TEMPLATE_DIR = Path(__file__).resolve().parent
"""The ``features/`` folder: Feast definitions and one ``feature_store.yaml`` per environment."""
ENVIRONMENTS: dict[str, str] = {
    "local": "feature_store.yaml",
    "cluster": "feature_store.cluster.yaml",
    "ray": "feature_store.ray.yaml",
}
FEATURE_STORE_YAML = "feature_store.yaml"
CHECK_TIMEOUT_S = 5.0
"""How long :func:`check_connections` waits for each store: a wrong address fails fast."""

_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})")
"""A variable reference as ``os.path.expandvars`` (which Feast uses) finds it."""
_VARIABLE_SOURCES = {
    var: f"{kind} {name}, key {key}"
    for kind, name, variables in (
        ("the config map", STORAGE_CONFIG_MAP, STORAGE_CONFIG_ENV),
        ("the secret", ONLINE_STORE_SECRET, ONLINE_STORE_SECRET_ENV),
        ("the secret", OBJECT_STORE_SECRET, OBJECT_STORE_SECRET_ENV),
    )
    for key, var in variables.items()
}
"""Where the cluster's pods get each variable (README, "Running on a cluster")."""
_REDIS_VARIABLES = " and ".join(
    ONLINE_STORE_SECRET_ENV[k] for k in ("redis-address", "redis-password")
)
_RAY_VARIABLE = STORAGE_CONFIG_ENV["feature-ray-address"]
_REGISTRY_VARIABLES = ", ".join(
    ONLINE_STORE_SECRET_ENV[k] for k in ("registry-address", "registry-user", "registry-password")
)


def template(environment: str) -> dict[str, Any]:
    """The parsed ``feature_store.yaml`` of an environment (environment variables unexpanded)."""
    if environment not in ENVIRONMENTS:
        raise InputError("environment", environment, f"must be one of {sorted(ENVIRONMENTS)}")
    loaded: dict[str, Any] = yaml.safe_load(
        (REPO_TEMPLATE_DIR / ENVIRONMENTS[environment]).read_text()
    )
    return loaded


def create_repo(repo_dir: Path, data_dir: Path) -> Path:
    """Write an embedded-default feature repository whose sources live in ``data_dir``.

    The registry and the SQLite online store go to ``repo_dir/data/``. Existing files of a
    previous repository in ``repo_dir`` are kept (their registry remembers what was applied).

    Returns:
        ``repo_dir``, ready for :func:`open_store`.
    """
    config = template("local")
    config["offline_store"]["data_root"] = str(data_dir.resolve())
    repo_dir.mkdir(parents=True, exist_ok=True)
    (repo_dir / "data").mkdir(exist_ok=True)
    (repo_dir / FEATURE_STORE_YAML).write_text(yaml.safe_dump(config, sort_keys=False))
    return repo_dir


def unset_variables(config_file: Path) -> list[str]:
    """The environment variables a ``feature_store.yaml`` refers to that are unset or empty.

    Feast expands ``$VAR`` and ``${VAR}`` with ``os.path.expandvars``, which leaves an unset
    variable as literal text: the store would fail much later, deep inside Feast or a driver.
    Only values count; a variable named in a comment does not.
    """
    names: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)
        elif isinstance(node, str):
            names.extend(m.strip("{}") for m in _VARIABLE.findall(node))

    visit(yaml.safe_load(config_file.read_text()))
    return sorted({name for name in names if not os.environ.get(name)})


def open_store(repo: Path | str) -> FeatureStore:
    """Open the feature store of a repository folder holding a ``feature_store.yaml``.

    Nothing is contacted yet; :func:`check_connections` checks the stores a step needs.

    Raises:
        InputError: the folder has no ``feature_store.yaml``, or the file refers to environment
            variables that are unset or empty (naming each, and where the cluster sets it).
    """
    from feast import FeatureStore

    repo_path = Path(repo)
    config_file = repo_path / FEATURE_STORE_YAML
    if not config_file.is_file():
        raise InputError(
            "feature_repo", str(repo), f"must be a folder containing {FEATURE_STORE_YAML}"
        )
    unset = unset_variables(config_file)
    if unset:
        sources = [f"{n} from {_VARIABLE_SOURCES[n]}" for n in unset if n in _VARIABLE_SOURCES]
        where = f" (on the cluster: {'; '.join(sources)})" if sources else ""
        raise InputError(
            ", ".join(unset),
            str(config_file),
            f"this file refers to these environment variables: set each to a non-empty value"
            f"{where}",
        )
    return FeatureStore(repo_path=str(repo_path))


def check_connections(store: FeatureStore, *, online: bool = True, offline: bool = True) -> None:
    """Check, with short timeouts, that the stores a step uses answer, before it starts work.

    The registry is always checked; a SQL registry must accept a connection, Redis must answer
    PING with the configured password, and a remote offline ``data_root`` must be readable. A
    Ray cluster the offline store or the batch engine names must accept a connection, and its
    workers must be able to read the data: ``data_root`` must then be object storage. The
    embedded default (a registry file, SQLite, local data) needs no check and costs nothing.

    Args:
        store: an opened store (see :func:`open_store`; Feast has not connected to anything yet).
        online: check the online store (steps and services that read or write online features).
        offline: check the offline data (steps that join or materialize features); a serving pod
            holds no object-store credentials and passes False.

    Raises:
        InputError: a store does not answer; the message names it, its address (passwords
            hidden) and the variables to check.
    """
    from searchrank.core import storage

    config = store.config
    if config.registry.registry_type == "sql":
        for url in filter(None, (config.registry.path, config.registry.read_path)):
            _check_sql_registry(url)
    if online and config.online_store.type == "redis":
        _check_redis(config.online_store)
    root = getattr(config.offline_store, "data_root", None)
    if offline:
        _check_ray(config)
    if offline and root and storage.local_path(root) is None:
        storage.require_readable(root, "offline_store.data_root")


def _ray_addresses(config: Any) -> dict[str, str | None]:
    """``{setting: address}`` for the offline store and batch engine that run on Ray."""
    return {
        f"{section}.ray_address": getattr(settings, "ray_address", None) or None
        for section, settings in (
            ("offline_store", config.offline_store),
            ("batch_engine", config.batch_engine),
        )
        if "ray_address" in type(settings).model_fields
    }


def _check_ray(config: Any) -> None:
    """The Ray checks of :func:`check_connections` (see there)."""
    from searchrank.core import storage

    addresses = _ray_addresses(config)
    if len(set(addresses.values())) > 1:
        # Feast starts Ray once per process, with whichever of the two asks first.
        raise InputError(
            " and ".join(addresses),
            ", ".join(str(a) for a in addresses.values()),
            "the offline store and the batch engine must name the same Ray cluster",
        )
    for setting, address in addresses.items():
        if address is None:
            continue
        _check_ray_address(setting, address)
        root = getattr(config.offline_store, "data_root", None) or "."
        if storage.local_path(root) is not None:
            raise InputError(
                "offline_store.data_root",
                root,
                f"with {setting} set, Ray's workers read the feature data themselves on other "
                "machines: it must be object storage (s3://bucket/prefix), not a path here",
            )


def _check_ray_address(setting: str, address: str) -> None:
    """Open a TCP connection to a Ray head (``ray://host:port`` or ``host:port``) with a short
    timeout: ``ray.init`` itself keeps retrying an address that does not answer for minutes."""
    import socket
    from urllib.parse import urlsplit

    if address in ("auto", "local"):
        return
    client = address.startswith("ray://")
    parsed = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        host, port = parsed.hostname, parsed.port or (10001 if client else 6379)
    except ValueError as error:
        raise InputError(
            setting, address, f"must be ray://host:port or host:port ({error})"
        ) from error
    if not host:
        raise InputError(setting, address, "must be ray://host:port or host:port")
    try:
        socket.create_connection((host, port), timeout=CHECK_TIMEOUT_S).close()
    except OSError as error:
        raise InputError(
            setting,
            address,
            f"the Ray cluster must accept a connection within {CHECK_TIMEOUT_S:g} s ({error}): "
            f"check {_RAY_VARIABLE} (the config map {STORAGE_CONFIG_MAP}) and that the Ray "
            "head is up",
        ) from error


def _check_sql_registry(url: str) -> None:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError as error:
        raise InputError("registry.path", url, f"must be an SQLAlchemy URL ({error})") from error
    if parsed.get_backend_name() == "sqlite":
        return  # a local file
    shown = parsed.render_as_string(hide_password=True)
    engine = sqlalchemy.create_engine(
        parsed, connect_args={"connect_timeout": int(CHECK_TIMEOUT_S)}, poolclass=NullPool
    )
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.SQLAlchemyError as error:
        reason = " ".join(str(getattr(error, "orig", None) or error).split())
        raise InputError(
            "registry.path",
            shown,
            f"the SQL registry must accept a connection within {CHECK_TIMEOUT_S:g} s ({reason}): "
            f"check {_REGISTRY_VARIABLES} (the secret {ONLINE_STORE_SECRET}) and that the "
            "database is up",
        ) from error
    finally:
        engine.dispose()


def _check_redis(online_store: RedisOnlineStoreConfig) -> None:
    import redis
    from feast.infra.online_stores.redis import RedisOnlineStore
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    shown = re.sub(r"(password=)[^,]*", r"\1***", online_store.connection_string)
    # Feast's own client, so cluster, sentinel, TLS and database settings are honoured; Feast
    # sets no timeouts, so the probe adds short ones (later parameters win).
    timeouts = f",socket_connect_timeout={CHECK_TIMEOUT_S},socket_timeout={CHECK_TIMEOUT_S}"
    probe = online_store.model_copy(
        update={"connection_string": online_store.connection_string + timeouts}
    )
    try:
        client = RedisOnlineStore()._get_client(probe)
        # One attempt: redis-py retries refused connections and passwords with a backoff of
        # seconds, which only delays the report.
        client.set_retry(Retry(NoBackoff(), 0))
        client.ping()
    except redis.RedisError as error:
        raise InputError(
            "online_store.connection_string",
            shown,
            f"Redis must answer PING with this password within {CHECK_TIMEOUT_S:g} s "
            f"({error}): check {_REDIS_VARIABLES} (the secret {ONLINE_STORE_SECRET}) and that "
            "Redis is up",
        ) from error


def apply_definitions(store: FeatureStore) -> None:
    """Register searchrank's entities, views and feature services (what ``feast apply`` does)."""
    from searchrank.features import definitions

    with warnings.catch_warnings():
        # Feast warns that on-demand views scale poorly offline; ours is the text match,
        # measured in tests/benchmarks/bench_fetch.py.
        warnings.filterwarnings("ignore", "On demand feature view", RuntimeWarning)
        store.apply(definitions.ALL_OBJECTS)
