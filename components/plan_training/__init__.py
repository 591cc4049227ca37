"""``plan_training``: the train steps' Kubernetes placement, from where their Ray runs."""

from searchrank.core.lazy import lazy_export

__all__ = ["plan_training_op"]
__getattr__ = lazy_export(__name__, "plan_training_op")
