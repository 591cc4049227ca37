"""``train_intent``: the query-intent model, and its class probabilities as ranker features."""

from searchrank.core.lazy import lazy_export

__all__ = ["train_intent_op"]
__getattr__ = lazy_export(__name__, "train_intent_op")
