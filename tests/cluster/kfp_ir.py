"""What Kubeflow would make of a compiled pipeline: each task's pod, read from the IR YAML.

Kubeflow's driver turns a task's container spec (deployment spec) and its Kubernetes platform
config (platform spec) into a pod: requests and limits, the accelerator, node selector and
tolerations (some resolved from parameters at run time), environment variables from secrets and
config maps, and volumes. There is no Kubeflow here, so the tests read the same two documents and
resolve them the way the driver does (``backend/src/v2/driver``: a resource or accelerator count
given as a parameter placeholder is read as a *string* parameter; an empty toleration list or
node selector adds nothing), for parameter values and upstream outputs that a test supplies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_PLACEHOLDER = re.compile(r"^\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}$")


@dataclass(frozen=True)
class Task:
    """One task of the compiled graph, wherever it sits (root DAG or a condition branch)."""

    name: str
    spec: dict[str, Any]
    component: dict[str, Any]
    parent: Task | None

    @property
    def executor(self) -> str:
        return str(self.component["executorLabel"])

    @property
    def arguments(self) -> dict[str, Any]:
        """The task's parameter inputs: where each comes from."""
        arguments: dict[str, Any] = self.spec.get("inputs", {}).get("parameters", {})
        return arguments

    @property
    def input_parameters(self) -> dict[str, Any]:
        parameters: dict[str, Any] = self.component.get("inputDefinitions", {}).get(
            "parameters", {}
        )
        return parameters


@dataclass
class Pod:
    """The parts of a task's pod that the tests check."""

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    gpus: int = 0
    gpu_type: str = ""
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    timeout_s: int | None = None
    env: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """variable → (``secret`` or ``configMap``, object name, key)."""
    config_map_volumes: dict[str, str] = field(default_factory=dict)
    """mount path → config map name."""
    empty_dirs: dict[str, str] = field(default_factory=dict)
    """mount path → medium."""
    claims: dict[str, str] = field(default_factory=dict)
    """mount path → persistent volume claim."""
    labels: dict[str, str] = field(default_factory=dict)


class CompiledPipeline:
    """A compiled pipeline's IR and platform spec (``searchrank compile`` output)."""

    def __init__(self, path: Path) -> None:
        documents = list(yaml.safe_load_all(path.read_text()))
        self.spec: dict[str, Any] = documents[0]
        self.platform: dict[str, Any] = (
            documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
            if len(documents) > 1
            else {}
        )
        self.tasks: dict[str, Task] = dict(self._walk(self.spec["root"], None))

    def _walk(self, component: dict[str, Any], parent: Task | None) -> Iterator[tuple[str, Task]]:
        for name, spec in component.get("dag", {}).get("tasks", {}).items():
            child = self.spec["components"][spec["componentRef"]["name"]]
            task = Task(name, spec, child, parent)
            if "dag" in child:
                yield from self._walk(child, task)
            else:
                yield name, task

    def defaults(self) -> dict[str, Any]:
        """The pipeline parameters' defaults."""
        parameters = self.spec["root"]["inputDefinitions"]["parameters"]
        return {name: p["defaultValue"] for name, p in parameters.items() if "defaultValue" in p}

    def container_tasks(self) -> list[Task]:
        """Tasks that run a container of ours (importers have none)."""
        executors = self.spec["deploymentSpec"]["executors"]
        return [t for t in self.tasks.values() if "container" in executors[t.executor]]

    def source(self, task: Task, name: str) -> tuple[str, Any]:
        """Where a task's input parameter comes from: ``("pipeline", parameter)``,
        ``("task", (producer, key))`` or ``("constant", value)``."""
        spec = task.arguments[name]
        if "componentInputParameter" in spec:
            outer = spec["componentInputParameter"]
            if task.parent is None:
                return "pipeline", outer
            return self.source(task.parent, outer)
        if "taskOutputParameter" in spec:
            output = spec["taskOutputParameter"]
            return "task", (output["producerTask"], output["outputParameterKey"])
        return "constant", spec["runtimeValue"]["constant"]

    def resolve(
        self,
        task: Task,
        value: Any,
        arguments: Mapping[str, Any],
        outputs: Mapping[tuple[str, str], Any],
    ) -> Any:
        """A value of the IR as the driver sees it for this task: placeholders of the task's
        input parameters replaced, recursively, by pipeline arguments or upstream outputs."""
        if not isinstance(value, str) or not (match := _PLACEHOLDER.match(value)):
            return value
        kind, where = self.source(task, match.group(1))
        if kind == "pipeline":
            return arguments[where]
        if kind == "task":
            return outputs[where]
        return self.resolve(task, where, arguments, outputs)

    def pod(
        self,
        task: Task,
        arguments: Mapping[str, Any] | None = None,
        outputs: Mapping[tuple[str, str], Any] | None = None,
    ) -> Pod:
        """The task's pod for these pipeline arguments (defaults filled in) and upstream
        outputs; a runtime-valued setting reads ``None`` when it cannot be resolved."""
        values = {**self.defaults(), **(arguments or {})}
        known = dict(outputs or {})

        def resolved(value: Any) -> Any:
            try:
                return self.resolve(task, value, values, known)
            except KeyError:
                return None

        def parameter(spec: dict[str, Any]) -> Any:
            try:
                return self._parameter(task, spec, values, known)
            except KeyError:
                return None

        container = self.spec["deploymentSpec"]["executors"][task.executor]["container"]
        pod = Pod()
        _apply_resources(pod, container.get("resources", {}), resolved)
        _apply_platform(pod, self.platform.get(task.executor, {}), parameter)
        return pod

    def _parameter(
        self,
        task: Task,
        spec: dict[str, Any],
        arguments: Mapping[str, Any],
        outputs: Mapping[tuple[str, str], Any],
    ) -> Any:
        """A platform setting's parameter spec (pipeline input, task output or constant)."""
        if "componentInputParameter" in spec:
            name = spec["componentInputParameter"]
            inner = Task(task.name, {"inputs": {"parameters": {name: spec}}}, {}, task.parent)
            kind, where = self.source(inner, name)
            return arguments[where] if kind == "pipeline" else outputs[where]
        if "taskOutputParameter" in spec:
            output = spec["taskOutputParameter"]
            return outputs[(output["producerTask"], output["outputParameterKey"])]
        return spec["runtimeValue"]["constant"]


def _apply_resources(pod: Pod, resources: dict[str, Any], resolved: Callable[[Any], Any]) -> None:
    """Requests, limits and the accelerator of a container spec."""
    pod.cpu_request = resolved(resources.get("resourceCpuRequest"))
    pod.cpu_limit = resolved(resources.get("resourceCpuLimit"))
    pod.memory_request = resolved(resources.get("resourceMemoryRequest"))
    pod.memory_limit = resolved(resources.get("resourceMemoryLimit"))
    accelerator = resources.get("accelerator")
    if accelerator:
        count = resolved(accelerator.get("resourceCount"))
        kind = resolved(accelerator.get("resourceType"))
        # The driver reads both as string parameters; a number is not a string and yields no
        # accelerator at all.
        if isinstance(count, str) and isinstance(kind, str) and count and kind:
            pod.gpus, pod.gpu_type = int(count), kind


def _apply_platform(pod: Pod, config: dict[str, Any], parameter: Callable[[Any], Any]) -> None:
    """Timeout, placement, variables and volumes of a task's Kubernetes platform config."""
    if "activeDeadlineSeconds" in config:
        pod.timeout_s = int(config["activeDeadlineSeconds"])
    selector = config.get("nodeSelector", {})
    if "nodeSelectorJson" in selector:
        pod.node_selector = dict(parameter(selector["nodeSelectorJson"]) or {})
    else:
        pod.node_selector = dict(selector.get("labels", {}))
    for toleration in config.get("tolerations", []):
        if "tolerationJson" not in toleration:
            pod.tolerations.append(toleration)
            continue
        found = parameter(toleration["tolerationJson"])
        pod.tolerations += found if isinstance(found, list) else [found] if found else []
    for kind, entries in (("secret", "secretAsEnv"), ("configMap", "configMapAsEnv")):
        key_field = "secretKey" if kind == "secret" else "configMapKey"
        for entry in config.get(entries, []):
            name = entry.get(f"{kind}Name") or parameter(entry[f"{kind}NameParameter"])
            for pair in entry["keyToEnv"]:
                pod.env[pair["envVar"]] = (kind, str(name), pair[key_field])
    for volume in config.get("configMapAsVolume", []):
        pod.config_map_volumes[volume["mountPath"]] = volume["configMapName"]
    for mount in config.get("emptyDirMounts", []):
        pod.empty_dirs[mount["mountPath"]] = mount.get("medium", "")
    pod.labels = dict(config.get("podMetadata", {}).get("labels", {}))
    for claim in config.get("pvcMount", []):
        pod.claims[claim["mountPath"]] = str(
            claim.get("constant") or parameter(claim["pvcNameParameter"])
        )
