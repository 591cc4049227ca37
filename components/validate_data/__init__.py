"""``validate_data``: the Great Expectations data contract between features and training."""

from searchrank.core.lazy import lazy_export

__all__ = ["validate_data_op"]
__getattr__ = lazy_export(__name__, "validate_data_op")
