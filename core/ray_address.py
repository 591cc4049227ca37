"""Where a training step's Ray runs, read from its ``ray_address`` parameter.

One reading for every place that branches on it: the trainers (``train_ranker``'s runner, its
Ray Jobs and RayJob modes) and the pipeline's placement of the training steps on Kubernetes
(``plan_training``).
"""

from __future__ import annotations

from enum import StrEnum

from searchrank.core.errors import InputError

KUBERAY_SCHEME = "kuberay://"


class RayTarget(StrEnum):
    """Where the training runs."""

    STEP = "step"
    """A Ray started inside the step itself: the step's pod does the training."""
    RAY_JOBS = "ray-jobs"
    """A Ray job submitted to a running cluster's dashboard (``http://head:8265``)."""
    KUBERAY = "kuberay"
    """A KubeRay RayJob created in a namespace (``kuberay://NAMESPACE``)."""


def ray_target(address: str) -> RayTarget:
    """Classify ``address``.

    Raises:
        InputError: the address is none of empty, ``http(s)://HOST:PORT`` or
            ``kuberay://NAMESPACE``.
    """
    if not address:
        return RayTarget.STEP
    if address.startswith(("http://", "https://")):
        return RayTarget.RAY_JOBS
    namespace = address.removeprefix(KUBERAY_SCHEME)
    if address.startswith(KUBERAY_SCHEME) and namespace and "/" not in namespace:
        return RayTarget.KUBERAY
    raise InputError(
        "ray_address",
        address,
        "must be empty (Ray in the step), a Ray dashboard URL http://HOST:8265 (a Ray job) "
        "or kuberay://NAMESPACE (a KubeRay RayJob)",
    )
