"""``materialize_features``: incremental, idempotent loads into the Feast online store."""

from searchrank.core.lazy import lazy_export

__all__ = ["materialize_features_op"]
__getattr__ = lazy_export(__name__, "materialize_features_op")
