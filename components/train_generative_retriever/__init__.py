"""``train_generative_retriever``: a generative, semantic-ID retriever, trained with Ray Train."""

from searchrank.core.lazy import lazy_export

__all__ = ["train_generative_retriever_op"]
__getattr__ = lazy_export(__name__, "train_generative_retriever_op")
