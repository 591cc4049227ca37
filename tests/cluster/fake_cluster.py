"""The cluster's objects for a rehearsal on one machine, and pods made from them.

Kubernetes gives a container the variables its spec takes from secrets and config maps, and
mounts config maps as folders; a key that is missing keeps the container from starting. Here
the same specs (a compiled task's platform config, read by :mod:`cluster.kfp_ir`, or a
manifest's container) are resolved against secrets and config maps that the test defines.
Volumes land under a root folder that stands for the pods' filesystem: ``/etc/feast`` is
``<root>/etc/feast``.
"""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster import pod_shim
from cluster.kfp_ir import CompiledPipeline, Pod


class MissingKeyError(KeyError):
    """A pod refers to a secret or config map key that the cluster does not hold."""


@dataclass
class FakeCluster:
    """Secrets and config maps by name, and where pods' volumes land."""

    secrets: dict[str, dict[str, str]]
    config_maps: dict[str, dict[str, str]]
    root: Path

    def value(self, kind: str, name: str, key: str) -> str:
        objects = self.secrets if kind == "secret" else self.config_maps
        if key not in objects.get(name, {}):
            raise MissingKeyError(f"{kind} {name!r} has no key {key!r}")
        return objects[name][key]

    def host_path(self, mount_path: str) -> Path:
        """Where a pod's ``mount_path`` lies on this machine."""
        return self.root / mount_path.lstrip("/")

    def volume_files(self, mount_path: str, config_map: str) -> dict[str, str]:
        """A config map mounted at ``mount_path``: one file per key."""
        folder = self.host_path(mount_path)
        return {str(folder / key): value for key, value in self.config_maps[config_map].items()}

    def task_env(self, pod: Pod) -> dict[str, str]:
        return {var: self.value(*source) for var, source in pod.env.items()}

    def task_files(self, pod: Pod) -> dict[str, str]:
        files: dict[str, str] = {}
        for mount_path, config_map in pod.config_map_volumes.items():
            files.update(self.volume_files(mount_path, config_map))
        return files

    def container_env(self, container: dict[str, Any]) -> dict[str, str]:
        """A manifest container's variables: literal values, secret and config map keys."""
        env: dict[str, str] = {}
        for variable in container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = str(variable["value"])
                continue
            source = variable["valueFrom"]
            kind = "secret" if "secretKeyRef" in source else "configMap"
            ref = source["secretKeyRef" if kind == "secret" else "configMapKeyRef"]
            try:
                env[variable["name"]] = self.value(kind, ref["name"], ref["key"])
            except MissingKeyError:
                if not ref.get("optional"):
                    raise
        return env

    def container_files(
        self, pod_spec: dict[str, Any], container: dict[str, Any]
    ) -> dict[str, str]:
        """The config maps a manifest container mounts, as files."""
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        files: dict[str, str] = {}
        for mount in container.get("volumeMounts", []):
            config_map = volumes[mount["name"]].get("configMap")
            if config_map:
                files.update(self.volume_files(mount["mountPath"], config_map["name"]))
        return files


@contextmanager
def mounted(files: dict[str, str]) -> Iterator[None]:
    """The files of a pod's config-map volumes, there for the block only."""
    for path, content in files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)
    try:
        yield
    finally:
        for path in files:
            Path(path).unlink(missing_ok=True)


def install_shim(cluster: FakeCluster, compiled: CompiledPipeline, folder: Path) -> Path:
    """Write the interpreter stand-in (:mod:`cluster.pod_shim`) and its plan: each compiled
    task's variables and config-map files.

    Returns:
        The stand-in. kfp.local runs every step with ``sys.executable`` (it replaces the
        component's ``python3`` with it), so the caller points ``sys.executable`` at the
        stand-in, and :data:`pod_shim.PLAN_ENV` at ``folder / "plan.json"``, while the
        pipeline runs.
    """
    plan = {
        "python": sys.executable,
        "tasks": {
            task.name: {
                "env": cluster.task_env(pod),
                "files": cluster.task_files(pod),
            }
            for task in compiled.container_tasks()
            for pod in [compiled.pod(task)]
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    plan_file = folder / "plan.json"
    plan_file.write_text(json.dumps(plan))
    shim = folder / "python3"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{pod_shim.__file__}" "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return shim
