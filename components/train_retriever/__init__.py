"""``train_retriever``: the two-tower retriever, trained with Ray Train."""

from searchrank.core.lazy import lazy_export

__all__ = ["train_retriever_op"]
__getattr__ = lazy_export(__name__, "train_retriever_op")
