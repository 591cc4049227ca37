"""``train_lightgbm``: the tuned LambdaMART baseline on the ranker's own features."""

from searchrank.core.lazy import lazy_export

__all__ = ["train_lightgbm_op"]
__getattr__ = lazy_export(__name__, "train_lightgbm_op")
