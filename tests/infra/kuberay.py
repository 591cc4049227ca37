"""Offline, strict validation of RayCluster and RayJob objects against KubeRay's own CRDs.

``kubernetes-validate`` knows only core Kubernetes objects, and no API server runs here, so the
``ray.io/v1`` schemas of the vendored CRDs (``infra/kuberay-crds/``, see its PROVENANCE.md) are
checked with ``jsonschema``. The schemas are made as strict as ``kubectl --validate=strict``:

- an object schema that lists ``properties`` refuses any other field (``additionalProperties:
  false``), unless it carries ``x-kubernetes-preserve-unknown-fields``;
- ``x-kubernetes-int-or-string`` admits an integer or a string, ``nullable`` admits null;
- the other ``x-kubernetes-*`` keys (list and map types, CEL rules) are dropped: list-map keys
  and CEL rules (immutability, ``managedBy``, RayJob's ``deletionStrategy``) are not evaluated.

Also what every Ray pod needs beyond the schema: a memory-backed ``/dev/shm`` that holds Ray's
object store.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "infra" / "kuberay-crds" / "v1.7.0"
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
API_VERSION = "ray.io/v1"
VERSION = "v1"

# Keywords whose value is one schema, a list of schemas, or a map of names to schemas; the rest
# (enum, default, required, pattern, ...) hold data and are copied as they are.
_ONE_SCHEMA = ("additionalProperties", "items", "not")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_MAPS = ("properties", "patternProperties")


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes structural schema as a strict JSON schema (see the module's docstring)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key in _ONE_SCHEMA and isinstance(value, dict):
            out[key] = strict(value)
        elif key in _SCHEMA_LISTS:
            out[key] = [strict(item) for item in value]
        elif key in _SCHEMA_MAPS:
            out[key] = {name: strict(item) for name, item in value.items()}
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_schema(kind: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``kind``'s ``ray.io/v1`` version, as vendored."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 2.3 MB of YAML
    crd = yaml.load((CRD_DIR / CRD_FILES[kind]).read_text(), Loader=loader)
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == VERSION]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


@functools.cache
def _validator(kind: str) -> Any:
    import jsonschema

    schema = strict(crd_schema(kind))
    # OpenAPI 3.0's schema objects follow JSON Schema draft 4 (e.g. boolean exclusiveMinimum).
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def errors(obj: dict[str, Any]) -> list[str]:
    """Every schema violation of a RayCluster or RayJob, as ``path: message`` (empty: valid)."""
    kind = obj.get("kind")
    if kind not in CRD_FILES:
        return [f"kind: {kind!r} is not one of {sorted(CRD_FILES)}"]
    if obj.get("apiVersion") != API_VERSION:
        return [f"apiVersion: {obj.get('apiVersion')!r} is not {API_VERSION!r}"]
    found = sorted(_validator(kind).iter_errors(obj), key=lambda e: list(map(str, e.path)))
    return [f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in found]


def ray_pods(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The head and worker pod specs of a RayCluster or of a RayJob's cluster, named."""
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    cluster = obj["spec"]["rayClusterSpec"] if obj["kind"] == "RayJob" else obj["spec"]
    yield f"{name} head", cluster["headGroupSpec"]["template"]["spec"]
    for group in cluster["workerGroupSpecs"]:
        yield f"{name} {group['groupName']}", group["template"]["spec"]


_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?")
_UNITS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity_bytes(quantity: str | int) -> float:
    """A Kubernetes memory quantity (``16Gi``, ``500M``, ``1024``) in bytes."""
    match = _QUANTITY.fullmatch(str(quantity))
    if match is None:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def shm_volume(name: str, pod: dict[str, Any]) -> dict[str, Any]:
    """The memory-backed emptyDir every container of a Ray pod mounts at /dev/shm."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounted = {
        mount["name"]
        for container in pod["containers"]
        for mount in container.get("volumeMounts", [])
        if mount["mountPath"] == "/dev/shm"
    }
    assert all(
        any(m["mountPath"] == "/dev/shm" for m in c.get("volumeMounts", []))
        for c in pod["containers"]
    ), f"{name}: a container without /dev/shm"
    assert len(mounted) == 1, f"{name}: /dev/shm from {sorted(mounted)}"
    empty_dir = volumes[mounted.pop()].get("emptyDir", {})
    assert empty_dir.get("medium") == "Memory", f"{name}: /dev/shm is not memory-backed"
    assert "sizeLimit" in empty_dir, f"{name}: /dev/shm has no sizeLimit"
    return dict(empty_dir)


def assert_shm_holds_rays_object_store(name: str, pod: dict[str, Any]) -> None:
    """Ray puts 30% of the container's memory in its object store and falls back to /tmp when
    /dev/shm is smaller; the tmpfs counts against the memory limit, so it must stay below it."""
    size = quantity_bytes(shm_volume(name, pod)["sizeLimit"])
    for container in pod["containers"]:
        memory = quantity_bytes(container["resources"]["limits"]["memory"])
        assert 0.3 * memory <= size <= 0.5 * memory, f"{name}: /dev/shm {size} for {memory}"
