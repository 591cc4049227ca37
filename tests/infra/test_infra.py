"""The cluster infrastructure, validated without a cluster: kustomize builds under its default
load restrictor, Kubernetes schemas (core objects with kubernetes-validate, Ray objects with
KubeRay's CRDs), security and resource rules on every container, the config maps and secrets
of the cluster contract in ``searchrank.core.names``, images tagged by the package
version, and Dockerfiles whose every copied path exists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import kuberay
from searchrank.core.names import (
    COMPONENT_IMAGE,
    FEAST_CONFIG_MAP,
    FEAST_REPO_MOUNT,
    IMAGE_REPOSITORY,
    OBJECT_STORE_SECRET,
    OBJECT_STORE_SECRET_ENV,
    ONLINE_STORE_SECRET,
    ONLINE_STORE_SECRET_ENV,
    PACKAGE_VERSION,
    STORAGE_CONFIG_ENV,
    STORAGE_CONFIG_MAP,
)
from searchrank.core.raytrain.rayjob import RAYCLUSTER
from searchrank.features.store import ENVIRONMENTS, FEATURE_STORE_YAML, REPO_TEMPLATE_DIR
from searchrank.serving.bento import WHEEL_ENV

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "gpu", "ray-features")
KUBERNETES_VERSION = "1.30"
DOCKERFILES = sorted((ROOT / "infra" / "docker").glob("*.Dockerfile"))
K8S = ROOT / "infra" / "k8s"
BASE = K8S / "base"
RAY_FEATURES = K8S / "components" / "ray-features"
FEAST_YAML = REPO_TEMPLATE_DIR / ENVIRONMENTS["cluster"]
# The files the base owns and the package reads through relative symlinks.
SHARED_WITH_THE_PACKAGE = {
    RAYCLUSTER: BASE / "raycluster.yaml",
    FEAST_YAML: BASE / "feature_store.yaml",
    REPO_TEMPLATE_DIR / ENVIRONMENTS["ray"]: RAY_FEATURES / "feature_store.yaml",
}


def build(overlay: str) -> list[dict[str, Any]]:
    """The overlay as kustomize's default load restrictor builds it (kubectl apply -k, Argo CD
    and Flux use that default)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    built = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    )
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def jobs() -> list[dict[str, Any]]:
    """The one-off Jobs (``infra/k8s/jobs``), created with ``kubectl create -f`` beside the
    overlay, which their pods rely on."""
    return [
        doc
        for path in sorted((K8S / "jobs").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


@pytest.fixture(scope="module", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return build(request.param) + jobs()


def pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod template of an object, named for messages."""
    name = f"{doc['kind']}/{doc['metadata'].get('name') or doc['metadata']['generateName']}"
    spec = doc.get("spec", {})
    if "template" in spec:
        yield name, spec["template"]["spec"]
    if doc["kind"] == "RayCluster":
        yield f"{name} head", spec["headGroupSpec"]["template"]["spec"]
        for group in spec["workerGroupSpecs"]:
            yield f"{name} {group['groupName']}", group["template"]["spec"]


def test_every_core_object_validates_against_the_kubernetes_schema(
    manifests: list[dict[str, Any]],
) -> None:
    import kubernetes_validate

    core = [d for d in manifests if not d["apiVersion"].startswith("ray.io/")]
    assert {d["kind"] for d in core} >= {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "StatefulSet",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
    }
    for doc in core:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    broken = {**core[0], "spec": {"unknownField": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):  # the validator does reject
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_every_container_is_locked_down_and_sized(manifests: list[dict[str, Any]]) -> None:
    checked = 0
    for doc in manifests:
        for name, pod in pod_specs(doc):
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
            for container in pod["containers"]:
                where = f"{name} {container['name']}"
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False, where
                assert context["readOnlyRootFilesystem"] is True, where
                assert context["capabilities"]["drop"] == ["ALL"], where
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(container["resources"][kind]), where
                checked += 1
    assert checked >= 5


def test_the_pipeline_may_manage_rayjobs_and_nothing_more(manifests: list[dict[str, Any]]) -> None:
    role = next(d for d in manifests if d["kind"] == "Role")
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert resources == {"rayjobs", "rayjobs/status", "pods", "pods/log"}
    assert all("*" not in rule["verbs"] for rule in role["rules"])


def test_images_are_tagged_with_the_package_version(manifests: list[dict[str, Any]]) -> None:
    images = {
        container["image"]
        for doc in manifests
        for _, pod in pod_specs(doc)
        for container in pod["containers"]
    }
    ours = {i for i in images if i.startswith("searchrank/")}
    assert COMPONENT_IMAGE in ours
    for image in ours:
        assert re.fullmatch(rf"searchrank/[a-z-]+:{re.escape(PACKAGE_VERSION)}(-cuda)?", image)


def test_the_gpu_overlay_puts_training_workers_on_gpu_nodes() -> None:
    cluster = next(d for d in build("gpu") if d["kind"] == "RayCluster")
    worker = cluster["spec"]["workerGroupSpecs"][0]
    pod = worker["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["containers"][0]["image"].endswith("-cuda")
    assert 0 <= worker["minReplicas"] <= worker["maxReplicas"]
    dev = next(d for d in build("dev") if d["kind"] == "RayCluster")
    assert (
        "nvidia.com/gpu"
        not in dev["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"][
            "limits"
        ]
    )


def test_the_compiled_pipeline_runs_every_step_in_the_component_image(tmp_path: Path) -> None:
    from searchrank.pipelines.run import compile_pipeline

    spec, _ = yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml").read_text())
    images = {
        executor["container"]["image"]
        for executor in spec["deploymentSpec"]["executors"].values()
        if "container" in executor
    }
    assert images == {COMPONENT_IMAGE}
    assert f"{IMAGE_REPOSITORY}:{PACKAGE_VERSION}" == COMPONENT_IMAGE


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus ``**``) as a regular expression."""
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/"))
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` (relative to the context) out of the build context: the last
    pattern that matches it or a folder above it decides, and ``!`` patterns take paths back."""
    parents = ["/".join(path.split("/")[:n]) for n in range(1, path.count("/") + 2)]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.removeprefix("!"))
        if any(regex.fullmatch(parent) for parent in parents):
            ignored = not negated
    return ignored


def test_the_dockerignore_matcher_follows_dockers_rules() -> None:
    patterns = ["tests", "**/__pycache__", ".venv-*", "infra/k8s", "!infra/k8s/base/a.yaml"]
    assert dockerignored("tests/infra/test_infra.py", patterns)
    assert dockerignored("core/__pycache__/x.pyc", patterns)
    assert dockerignored("__pycache__/x.pyc", patterns)
    assert dockerignored(".venv-checkov/bin/checkov", patterns)
    assert dockerignored("infra/k8s/base/b.yaml", patterns)
    assert not dockerignored("infra/k8s/base/a.yaml", patterns)
    assert not dockerignored("core/names.py", patterns)
    assert not dockerignored("testsuite/x", patterns)


def copies(text: str) -> list[tuple[str, str]]:
    """Each (source, where it lands relative to WORKDIR) of a Dockerfile's COPY lines from the
    build context: a folder's contents go into the destination, a file into a destination
    that ends in ``/``."""
    placed = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        *sources, destination = [w for w in words[1:] if not w.startswith("--")]
        for source in sources:
            into = destination.endswith("/") and not (ROOT / source).is_dir()
            target = Path(destination) / Path(source).name if into else Path(destination)
            placed.append((source, os.path.normpath(target)))
    return placed


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_path_a_dockerfile_copies_exists_and_is_not_ignored(dockerfile: Path) -> None:
    """Also the targets of symlinks inside copied folders: the image keeps the repository's
    layout, so a relative link works there only if its target is copied to the same place."""
    ignored = dockerignore_patterns()
    text = dockerfile.read_text()
    placed = copies(text)
    assert placed
    for source, target in placed:
        assert (ROOT / source).exists(), f"{dockerfile.name} copies missing {source}"
        assert not dockerignored(source, ignored), (
            f"{dockerfile.name} copies {source}, which .dockerignore drops"
        )
        assert target == os.path.normpath(source), f"{source} lands at {target}, not in place"
    copied = [ROOT / source for source, _ in placed]
    links = [
        link
        for folder in copied
        if folder.is_dir()
        for link in folder.rglob("*")
        if link.is_symlink() and not dockerignored(link.relative_to(ROOT).as_posix(), ignored)
    ]
    assert set(SHARED_WITH_THE_PACKAGE) <= set(links)
    for link in links:
        target = link.resolve()
        where = f"{dockerfile.name}: {link.relative_to(ROOT)} -> {link.readlink()}"
        assert not link.readlink().is_absolute(), f"{where} must be relative"
        assert target.is_relative_to(ROOT), where
        assert any(target == c or target.is_relative_to(c) for c in copied), f"{where} not copied"
        assert not dockerignored(target.relative_to(ROOT).as_posix(), ignored), f"{where} ignored"
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE), "the image must not run as root"
    # The image installs its own wheel with the pipelines extra and keeps it for the Bentos
    # that package_service builds.
    assert re.search(r"pip wheel --no-deps --wheel-dir (\S+) \.", text)
    assert "[pipelines]" in text and f"ENV {WHEEL_ENV}=" in text


CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
SKIP = re.compile(r"^\s*checkov\.io/skip\d+:\s*(CKV_\w+)=(.+)$")


def checkov(target: Path, framework: str) -> dict[str, Any]:
    """checkov's summary of ``target`` (its own venv: its pins clash with the stack's)."""
    import json

    if not CHECKOV.exists():
        pytest.skip("checkov is not installed (make .venv-checkov)")
    flag = "-d" if target.is_dir() else "-f"
    result = subprocess.run(
        [
            *(str(CHECKOV), flag, str(target), "--framework", framework),
            *("--quiet", "--skip-download", "-o", "json"),
        ],
        check=False,  # checkov exits 1 when a check fails; the report says which
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    return dict(report)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_finds_no_failed_check_in_the_manifests(overlay: str, tmp_path: Path) -> None:
    built = tmp_path / f"{overlay}.yaml"
    built.write_text(yaml.safe_dump_all(build(overlay) + jobs()))
    report = checkov(built, "kubernetes")
    failed = report.get("results", {}).get("failed_checks", [])
    assert report["summary"]["failed"] == 0, [(f["check_id"], f["resource"]) for f in failed]
    assert report["summary"]["passed"] > 100


def test_checkov_finds_no_failed_check_in_the_dockerfiles() -> None:
    report = checkov(ROOT / "infra" / "docker", "dockerfile")
    assert report["summary"]["failed"] == 0
    assert report["summary"]["passed"] > 50


def test_every_skipped_check_is_justified_next_to_its_annotation() -> None:
    skips = 0
    for manifest in (ROOT / "infra" / "k8s").rglob("*.yaml"):
        lines = manifest.read_text().splitlines()
        for number, line in enumerate(lines):
            match = SKIP.match(line)
            if match:
                skips += 1
                assert lines[number - 1].strip().startswith("#"), f"{manifest}:{number + 1}"
                assert len(match.group(2).split()) >= 4, f"{manifest}:{number + 1} says why"
    assert skips >= 1


def test_the_package_reads_the_bases_files_through_relative_symlinks() -> None:
    """One copy of the Ray cluster and of the cluster's feature_store.yaml, owned by the base
    (kustomize's default load restrictor refuses files outside it, and symlinks in it that point
    outside); the package's old paths link to them, so the wheel ships their content."""
    for link, target in SHARED_WITH_THE_PACKAGE.items():
        assert link.is_symlink(), link
        assert not link.readlink().is_absolute(), f"{link} must link relatively"
        assert link.resolve() == target.resolve(), link
        assert target.is_file() and not target.is_symlink(), target
    assert not [p for p in K8S.rglob("*") if p.is_symlink()], "kustomize refuses them"


def test_every_kustomization_reads_only_files_below_its_folder() -> None:
    """What kustomize's default load restrictor demands (other kustomizations, which are
    folders, may be anywhere)."""
    checked = 0
    for kustomization in K8S.rglob("kustomization.yaml"):
        folder = kustomization.parent
        spec = yaml.safe_load(kustomization.read_text())
        paths = list(spec.get("resources", [])) + [
            p.get("path") for p in spec.get("patches", []) if p.get("path")
        ]
        for generator in spec.get("configMapGenerator", []) + spec.get("secretGenerator", []):
            paths += [entry.split("=", 1)[-1] for entry in generator.get("files", [])]
            paths += generator.get("envs", [])
        for path in paths:
            # Lexically: a path that leaves the folder is refused unless, through symlinks, it
            # happens to come back; the file must simply live here.
            lexical = Path(os.path.normpath(folder / path))
            assert lexical.is_dir() or lexical.is_relative_to(folder), (
                f"{kustomization.relative_to(ROOT)} reads {path}, outside its folder"
            )
            checked += 1
    assert checked >= 10


def test_every_ray_object_validates_against_the_kuberay_crd(
    manifests: list[dict[str, Any]],
) -> None:
    """Strictly, as kubectl --validate=strict would (tests/infra/kuberay.py); the CRDs are
    vendored outside infra/k8s, so kustomize never applies them."""
    rays = [d for d in manifests if d["apiVersion"].startswith("ray.io/")]
    assert [d["kind"] for d in rays] == ["RayCluster"]
    for doc in rays:
        assert kuberay.errors(doc) == [], doc["metadata"]["name"]
    assert not [d for d in manifests if d["kind"] == "CustomResourceDefinition"]


def test_every_ray_pod_has_a_memory_backed_dev_shm_for_the_object_store(
    manifests: list[dict[str, Any]],
) -> None:
    pods = [pod for d in manifests if d["kind"] == "RayCluster" for pod in kuberay.ray_pods(d)]
    assert len(pods) >= 2
    for name, pod in pods:
        kuberay.assert_shm_holds_rays_object_store(name, pod)


def env_references(container: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(reference kind, object name, key, variable) of each env entry from a secret or map."""
    for variable in container.get("env", []):
        source = variable.get("valueFrom", {})
        for kind in ("secretKeyRef", "configMapKeyRef"):
            if kind in source:
                ref = source[kind]
                yield kind, ref["name"], ref["key"], variable["name"]


CONTRACT = {
    ("secretKeyRef", ONLINE_STORE_SECRET): ONLINE_STORE_SECRET_ENV,
    ("secretKeyRef", OBJECT_STORE_SECRET): OBJECT_STORE_SECRET_ENV,
    ("configMapKeyRef", STORAGE_CONFIG_MAP): STORAGE_CONFIG_ENV,
}
"""searchrank.core.names' secrets and config maps, with their keys' variables."""


def test_every_reference_to_the_cluster_contract_follows_core_names(
    manifests: list[dict[str, Any]],
) -> None:
    """Each variable from the contract's secrets and config maps is the one names.py maps its
    key to; each pod that opens Feast mounts its config map at FEAST_REPO_MOUNT and gets every
    variable feature_store.yaml reads, and no object-store credentials (it reads no offline
    data)."""
    contract_names = {name for _, name in CONTRACT}
    # feature_store.yaml's own variables, and the S3 client's (endpoint, region) beside them.
    needed = set(ONLINE_STORE_SECRET_ENV.values()) | set(STORAGE_CONFIG_ENV.values())
    assert set(re.findall(r"\$\{(\w+)\}", FEAST_YAML.read_text())) <= needed
    feast_pods = set()
    referenced = set()
    for doc in manifests:
        for name, pod in pod_specs(doc):
            feast_volumes = {
                v["name"]
                for v in pod.get("volumes", [])
                if v.get("configMap", {}).get("name") == FEAST_CONFIG_MAP
            }
            for container in pod["containers"] + pod.get("initContainers", []):
                where = f"{name} {container['name']}"
                for source in container.get("envFrom", []):
                    ref = source.get("secretRef") or source.get("configMapRef") or {}
                    assert ref.get("name") not in contract_names, f"{where}: envFrom {ref}"
                got = {}
                for kind, obj, key, variable in env_references(container):
                    if obj not in contract_names:
                        continue
                    assert (kind, obj) in CONTRACT, f"{where}: {obj} through {kind}"
                    assert CONTRACT[kind, obj].get(key) == variable, (
                        f"{where}: {obj}[{key}] as {variable}, not {CONTRACT[kind, obj].get(key)}"
                    )
                    got[variable] = obj
                    referenced.add((obj, key))
                mounts = [
                    m for m in container.get("volumeMounts", []) if m["name"] in feast_volumes
                ]
                if not mounts:
                    continue
                feast_pods.add(name)
                assert [m["mountPath"] for m in mounts] == [FEAST_REPO_MOUNT], where
                assert needed <= set(got), f"{where} lacks {needed - set(got)}"
                assert OBJECT_STORE_SECRET not in got.values(), f"{where} reads no offline data"
    assert {
        "Deployment/feature-server",
        "Deployment/search-service",
        "Job/feast-apply-",
    } <= feast_pods
    assert (ONLINE_STORE_SECRET, "redis-password") in referenced  # Redis itself


def test_the_config_maps_exist_under_the_names_the_pipeline_uses(
    manifests: list[dict[str, Any]], request: pytest.FixtureRequest
) -> None:
    """No hash suffix (the pipeline, compiled outside kustomize, names them), the keys the
    mappings need, and no reference in the manifests to a config map that is not built. The
    feature store's configuration is the cluster's, or the Ray one with ray-features."""
    maps = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "ConfigMap"}
    assert set(maps) == {FEAST_CONFIG_MAP, STORAGE_CONFIG_MAP}
    ray = request.node.callspec.params["manifests"] == "ray-features"
    feast_yaml = REPO_TEMPLATE_DIR / ENVIRONMENTS["ray" if ray else "cluster"]
    assert maps[FEAST_CONFIG_MAP]["data"] == {FEATURE_STORE_YAML: feast_yaml.read_text()}
    storage = maps[STORAGE_CONFIG_MAP]["data"]
    assert set(storage) == set(STORAGE_CONFIG_ENV)
    assert storage["feature-data-uri"].startswith("s3://")
    used = set()
    for doc in manifests:
        for _, pod in pod_specs(doc):
            used |= {v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v}
            for container in pod["containers"]:
                used |= {o for k, o, _, _ in env_references(container) if k == "configMapKeyRef"}
    assert used == set(maps)
