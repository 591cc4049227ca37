"""``train_ranker``: the context-aware transformer ranker, trained with Ray Train."""

from searchrank.core.lazy import lazy_export

__all__ = ["train_ranker_op"]
__getattr__ = lazy_export(__name__, "train_ranker_op")
