"""``experiment``: champion against challenger on simulated traffic: team-draft interleaving, an
A/B test with CUPED and a sample-ratio check, non-inferiority guardrails, the ship decision and
how many searches each method needs."""

from searchrank.core.lazy import lazy_export

__all__ = ["experiment_op"]
__getattr__ = lazy_export(__name__, "experiment_op")
