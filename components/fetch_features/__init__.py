"""``fetch_features``: entity dataframe + feature service -> point-in-time training set."""

from searchrank.core.lazy import lazy_export

__all__ = ["fetch_features_op"]
__getattr__ = lazy_export(__name__, "fetch_features_op")
