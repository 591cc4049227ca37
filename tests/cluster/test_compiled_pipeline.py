"""The compiled pipeline, task by task, as Kubeflow will run it.

Each test reads the YAML that ``searchrank compile`` writes and resolves every task's pod the way
Kubeflow's driver does (:mod:`cluster.kfp_ir`), for the ways a team runs training.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cluster.kfp_ir import CompiledPipeline, Pod, Task
from infra.test_infra import build as build_manifests

from searchrank.components.plan_training.logic import plan_training
from searchrank.core import names
from searchrank.features.store import ENVIRONMENTS, REPO_TEMPLATE_DIR
from searchrank.pipelines.run import compile_pipeline

PLAN = "plan-training-op"
TRAINERS = ("train-ranker-op", "train-retriever-op", "train-generative-retriever-op")
GPU_RUN = {"use_gpu": True, "num_workers": 2, "gpus_per_worker": 1.0}
RUNS = {
    "in the step, on GPUs": GPU_RUN,
    "in the step, on CPUs": {"use_gpu": False},
    "as a Ray job": {**GPU_RUN, "ray_address": "http://ray-head:8265"},
    "as a KubeRay RayJob": {**GPU_RUN, "ray_address": "kuberay://searchrank"},
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompiledPipeline:
    return CompiledPipeline(compile_pipeline(tmp_path_factory.mktemp("ir") / "pipeline.yaml"))


def pods(compiled: CompiledPipeline, arguments: dict[str, object]) -> dict[str, Pod]:
    """Every container task's pod for one run, with ``plan_training``'s outputs computed by the
    code the step runs."""
    values = {**compiled.defaults(), **arguments}
    plan = compiled.tasks[PLAN]
    inputs = {
        name: compiled.resolve(plan, f"{{{{$.inputs.parameters['{name}']}}}}", values, {})
        for name in plan.input_parameters
    }
    placement = plan_training(**inputs)
    outputs = {(PLAN, k): v for k, v in vars(placement).items()}
    outputs[(PLAN, "target")] = str(placement.target)
    return {t.name: compiled.pod(t, values, outputs) for t in compiled.container_tasks()}


def cluster_variables() -> set[str]:
    """The variables ``feature_store.cluster.yaml`` reads."""
    text = (REPO_TEMPLATE_DIR / ENVIRONMENTS["cluster"]).read_text()
    return set(re.findall(r"\$\{(\w+)\}", text))


def opens_feast(task: Task) -> bool:
    return "feature_repo" in task.arguments


def test_every_task_that_opens_feast_mounts_its_configuration_and_gets_every_variable(
    compiled: CompiledPipeline,
) -> None:
    feast_tasks = [t for t in compiled.container_tasks() if opens_feast(t)]
    assert {t.name for t in feast_tasks} >= {
        "materialize-features-op",
        "fetch-features-op",
        "package-service-op",
    }
    needed = cluster_variables() | set(names.OBJECT_STORE_SECRET_ENV.values())
    assert names.STORAGE_CONFIG_ENV["feature-data-uri"] in needed
    for task in feast_tasks:
        pod = compiled.pod(task)
        kind, where = compiled.source(task, "feature_repo")
        assert kind == "pipeline", task.name
        repo = compiled.defaults()[where]
        assert pod.config_map_volumes == {repo: names.FEAST_CONFIG_MAP}, task.name
        missing = needed - set(pod.env)
        assert not missing, f"{task.name} lacks {sorted(missing)}"
        for variable, (kind, name, key) in pod.env.items():
            expected = {
                ("secret", names.ONLINE_STORE_SECRET): names.ONLINE_STORE_SECRET_ENV,
                ("secret", names.OBJECT_STORE_SECRET): names.OBJECT_STORE_SECRET_ENV,
                ("configMap", names.STORAGE_CONFIG_MAP): names.STORAGE_CONFIG_ENV,
            }[(kind, name)]
            assert expected[key] == variable, (task.name, variable)


def test_steps_that_read_object_storage_get_its_credentials(compiled: CompiledPipeline) -> None:
    """The champion and the reference training set may be s3:// URIs."""
    credentials = set(names.OBJECT_STORE_SECRET_ENV.values()) | set(
        names.STORAGE_CONFIG_ENV.values()
    )
    for task in compiled.container_tasks():
        if {"champion", "reference"} & set(task.arguments):
            assert credentials <= set(compiled.pod(task).env), task.name


@pytest.mark.parametrize("run", RUNS, ids=lambda r: r.replace(" ", "-").replace(",", ""))
def test_only_a_step_that_trains_on_gpus_itself_asks_for_a_gpu_node(
    compiled: CompiledPipeline, run: str
) -> None:
    arguments = RUNS[run]
    in_pod_gpu = run == "in the step, on GPUs"
    for name, pod in pods(compiled, arguments).items():
        trains_here = name in TRAINERS and in_pod_gpu
        assert (pod.gpus > 0) == trains_here, (run, name, pod.gpus)
        assert bool(pod.node_selector) == trains_here, (run, name)
        assert bool(pod.tolerations) == trains_here, (run, name)
        if trains_here:
            assert pod.gpus == 2 and pod.gpu_type == "nvidia.com/gpu"
            assert pod.node_selector == {"nvidia.com/gpu.present": "true"}
            assert pod.tolerations[0]["key"] == "nvidia.com/gpu"


def test_the_gpu_count_reaches_the_driver_as_a_string(compiled: CompiledPipeline) -> None:
    """Kubeflow's driver reads an accelerator count given as a parameter with GetStringValue: an
    integer parameter silently yields no GPU at all."""
    outputs = compiled.spec["components"]["comp-plan-training-op"]["outputDefinitions"]
    assert outputs["parameters"]["gpus"]["parameterType"] == "STRING"
    for name in TRAINERS:
        task = compiled.tasks[name]
        count = compiled.spec["deploymentSpec"]["executors"][task.executor]["container"][
            "resources"
        ]["accelerator"]["resourceCount"]
        kind, where = compiled.source(task, count.split("'")[1])
        assert (kind, where) == ("task", (PLAN, "gpus")), name


def test_a_step_that_follows_remote_training_is_small(compiled: CompiledPipeline) -> None:
    here = pods(compiled, {"use_gpu": False, "num_workers": 4, "cpus_per_worker": 2.0})
    remote = pods(compiled, {"ray_address": "kuberay://searchrank", "num_workers": 4})
    for name in TRAINERS:
        assert here[name].cpu_limit == "9", "the workers' CPUs and the driver's"
        assert remote[name].cpu_limit == "2"


def test_ray_steps_get_a_memory_backed_dev_shm_and_the_shared_work_claim(
    compiled: CompiledPipeline,
) -> None:
    for name, pod in pods(compiled, {}).items():
        if name in TRAINERS:
            assert pod.empty_dirs == {"/dev/shm": "Memory"}, name
            assert pod.claims == {names.WORK_MOUNT: "searchrank-work"}, name
        else:
            assert "/dev/shm" not in pod.empty_dirs, name


def test_every_task_has_requests_limits_and_a_timeout(compiled: CompiledPipeline) -> None:
    tasks = pods(compiled, {})
    assert len(tasks) >= 15
    for name, pod in tasks.items():
        for value in (pod.cpu_request, pod.cpu_limit, pod.memory_request, pod.memory_limit):
            assert isinstance(value, str) and value, name
        assert pod.timeout_s and pod.timeout_s > 0, name


def test_the_pipeline_root_is_object_storage_and_only_fresh_steps_skip_the_cache(
    tmp_path: Path,
) -> None:
    compiled = CompiledPipeline(compile_pipeline(tmp_path / "p.yaml", "s3://b/root"))
    assert compiled.spec["defaultPipelineRoot"] == "s3://b/root"
    caching = {
        name: task.spec.get("cachingOptions", {}).get("enableCache") is True
        for name, task in compiled.tasks.items()
    }
    # What writes the online store, packages the Bento or reports on this run always runs; the
    # rest comes from the cache when its inputs match (a rerun after a failed step).
    fresh = {
        "materialize-features-op",
        "package-service-op",
        *("run-report-op", "run-report-op-2", "run-report-op-3"),
    }
    assert {name for name, cached in caching.items() if not cached} == fresh


def admitted_labels(policy: dict[str, object], port: int) -> list[dict[str, str]]:
    """The pod labels a network policy lets in on ``port`` (any of them suffices)."""
    found = []
    for rule in policy["spec"]["ingress"]:  # type: ignore[index]
        ports = {p["port"] for p in rule.get("ports", [])}
        if ports and port not in ports:
            continue
        found += [f["podSelector"]["matchLabels"] for f in rule.get("from", [])]
    return found


def test_the_network_policies_admit_the_steps_to_redis_and_to_the_ray_head(
    compiled: CompiledPipeline,
) -> None:
    """The manifests deny ingress by default: a Feast step must carry a label that the Redis
    policy admits, and a train step one that the Ray head's policy admits (port 8265)."""
    manifests = build_manifests("dev")
    policies = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "NetworkPolicy"}
    redis = admitted_labels(policies["redis-from-feast-clients"], 6379)
    ray = admitted_labels(policies["ray-cluster"], 8265)
    for name, pod in pods(compiled, {}).items():
        task = compiled.tasks[name]
        if opens_feast(task):
            assert any(labels.items() <= pod.labels.items() for labels in redis), name
        if name in TRAINERS:
            assert any(labels.items() <= pod.labels.items() for labels in ray), name
