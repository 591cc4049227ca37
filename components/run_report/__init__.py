"""``run_report``: one HTML page per pipeline run, for people to look at."""

from searchrank.core.lazy import lazy_export

__all__ = ["run_report_op"]
__getattr__ = lazy_export(__name__, "run_report_op")
