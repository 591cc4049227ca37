"""``evaluate``: NDCG, MRR, MAP and recall by slice, paired bootstrap intervals against the
baselines and the blessed model, and the blessing decision."""

from searchrank.core.lazy import lazy_export

__all__ = ["evaluate_op"]
__getattr__ = lazy_export(__name__, "evaluate_op")
