"""``build_index``: item embeddings into a Voyager ANN index, with its recall measured."""

from searchrank.core.lazy import lazy_export

__all__ = ["build_index_op"]
__getattr__ = lazy_export(__name__, "build_index_op")
