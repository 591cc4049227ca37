"""Training as a KubeRay RayJob created through the Kubernetes API (``ray_address="kuberay://NS"``).

The pipeline step writes the run's spec to shared storage (the step's work folder must be a
volume the Ray pods mount too, as for Ray Jobs), renders a RayJob from the shared manifests
(:mod:`.rayjob`), creates it, and follows it to the end: its job status decides, the submitter
pod's log is copied into the step's log as it grows, and the result (the best checkpoint's path
and the history) is read back from shared storage. On cancellation (SIGTERM, Ctrl-C), on a
failed or stopped job and on a timeout the RayJob is deleted, which deletes its Ray cluster.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from searchrank.core.errors import InputError
from searchrank.core.ray_address import KUBERAY_SCHEME, RayTarget, ray_target
from searchrank.core.raytrain.jobs import (
    RESULT,
    SPEC,
    JobFailedError,
    sigterm_as_interrupt,
)
from searchrank.core.raytrain.rayjob import RayJobSpec, render_rayjob

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayjobs"
FINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def namespace_of(address: str) -> str:
    """The namespace of a ``kuberay://NAMESPACE`` address."""
    if ray_target(address) is not RayTarget.KUBERAY:
        raise InputError("ray_address", address, "must look like kuberay://NAMESPACE")
    return address.removeprefix(KUBERAY_SCHEME)


def _api_client() -> Any:
    """A Kubernetes API client: the pod's service account in a cluster, else the kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        # The client reads KUBECONFIG once, on import; read it when called instead.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return client.ApiClient()


def run_rayjob(
    address: str,
    spec: dict[str, Any],
    storage: Path,
    job: RayJobSpec,
    log: Callable[[str], None] = print,
    timeout_s: float | None = None,
    poll_seconds: float = 2.0,
) -> dict[str, Any]:
    """Run the training as a RayJob in the namespace of ``address`` and wait for it.

    Args:
        address: ``kuberay://NAMESPACE``.
        spec: the training spec (its paths must be readable by the Ray pods).
        storage: shared storage for the spec and the result.
        job: the RayJob's image and sizes; its name and entrypoint are set here.
        timeout_s: delete the RayJob and fail after this long; no limit when None.

    Returns:
        The job's result: the best checkpoint's path and the training history.
    """
    from kubernetes import client

    namespace = namespace_of(address)
    storage.mkdir(parents=True, exist_ok=True)
    (storage / SPEC).write_text(json.dumps(spec))
    (storage / RESULT).unlink(missing_ok=True)
    job = replace(
        job,
        name=f"searchrank-train-{uuid.uuid4().hex[:8]}",
        entrypoint=f"python -m searchrank.core.raytrain.job {storage / SPEC}",
    )
    api = _api_client()
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, render_rayjob(job))
    log(f"created RayJob {namespace}/{job.name}")
    started, shown, status = time.monotonic(), 0, ""
    with sigterm_as_interrupt():
        try:
            while status not in FINAL:
                time.sleep(poll_seconds)
                current = custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, job.name
                )
                status = str(current.get("status", {}).get("jobStatus", ""))
                shown = _copy_log(core, namespace, job.name, shown, log)
                if timeout_s is not None and time.monotonic() - started > timeout_s:
                    raise TimeoutError(f"RayJob {job.name} ran longer than {timeout_s} s")
            if status != "SUCCEEDED":
                raise JobFailedError(f"RayJob {namespace}/{job.name} ended {status}")
        except BaseException:
            log(f"deleting RayJob {namespace}/{job.name}")
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, job.name)
            raise
    result: dict[str, Any] = json.loads((storage / RESULT).read_text())
    return result


def _copy_log(core: Any, namespace: str, name: str, shown: int, log: Callable[[str], None]) -> int:
    """Log the submitter pod's new lines; returns how many lines have been shown."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    if not pods:
        return shown
    text = core.read_namespaced_pod_log(pods[0].metadata.name, namespace)
    lines = text.splitlines()
    for line in lines[shown:]:
        log(f"[rayjob] {line}")
    return max(shown, len(lines))
