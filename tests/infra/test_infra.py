"""The cluster infrastructure, validated without a cluster: kustomize builds, Kubernetes schemas,
security and resource rules on every container, images tagged by the package version, and
Dockerfiles whose every copied path exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from searchrank.components.core.names import COMPONENT_IMAGE, IMAGE_REPOSITORY, PACKAGE_VERSION

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "gpu")
KUBERNETES_VERSION = "1.30"
DOCKERFILES = sorted((ROOT / "infra" / "docker").glob("*.Dockerfile"))


def build(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    built = subprocess.run(
        [
            *(kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone"),
            str(ROOT / "infra" / "k8s" / "overlays" / overlay),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return build(request.param)


def pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod template of an object, named for messages."""
    name = f"{doc['kind']}/{doc['metadata']['name']}"
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


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_path_a_dockerfile_copies_exists_and_is_not_ignored(dockerfile: Path) -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    text = dockerfile.read_text()
    sources = [
        part
        for line in text.splitlines()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
        if not part.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile.name} copies missing {source}"
        assert source not in ignored, (
            f"{dockerfile.name} copies {source}, which .dockerignore drops"
        )
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE), "the image must not run as root"
    assert "pip install .\n" in text


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
    built.write_text(yaml.safe_dump_all(build(overlay)))
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


def test_the_ray_objects_pod_templates_validate_as_kubernetes_pod_templates(
    manifests: list[dict[str, Any]],
) -> None:
    """Until the KubeRay CRD schemas are vendored, the pods inside RayClusters and RayJobs
    (most of their schema) are validated as core PodTemplates."""
    import kubernetes_validate

    from searchrank.components.train_ranker.rayjob import RayJobSpec, render_rayjob

    job = render_rayjob(RayJobSpec(name="train-1", entrypoint="python -m x", image="i:1"))
    job_cluster = {
        "kind": "RayCluster",
        "metadata": {"name": "job"},
        "spec": job["spec"]["rayClusterSpec"],
    }
    rays = [d for d in manifests if d["kind"] == "RayCluster"] + [job_cluster]
    checked = 0
    for cluster in rays:
        spec = cluster["spec"]
        templates = [spec["headGroupSpec"]["template"]] + [
            g["template"] for g in spec["workerGroupSpecs"]
        ]
        for template in templates:
            kubernetes_validate.validate(
                {
                    "apiVersion": "v1",
                    "kind": "PodTemplate",
                    "metadata": {"name": "ray"},
                    "template": template,
                },
                KUBERNETES_VERSION,
                strict=True,
            )
            checked += 1
    assert checked >= 4
