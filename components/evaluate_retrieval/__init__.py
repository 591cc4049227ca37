"""``evaluate_retrieval``: the retriever, its index and the intent model on the test split."""

from searchrank.core.lazy import lazy_export

__all__ = ["evaluate_retrieval_op"]
__getattr__ = lazy_export(__name__, "evaluate_retrieval_op")
