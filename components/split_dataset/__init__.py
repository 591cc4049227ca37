"""``split_dataset``: a training set cut by time into train, validation and test splits."""

from searchrank.core.lazy import lazy_export

__all__ = ["split_dataset_op"]
__getattr__ = lazy_export(__name__, "split_dataset_op")
