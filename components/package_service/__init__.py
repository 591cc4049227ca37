"""``package_service``: the blessed ranker into BentoML's model store with its lineage, the Bento
built and exported, and infra validation against a real ``bentoml serve``."""

from searchrank.core.lazy import lazy_export

__all__ = ["package_service_op"]
__getattr__ = lazy_export(__name__, "package_service_op")
