"""One local Ray for many training steps (``core.raytrain.runner.shared_local_ray``): a step
started while it runs, in a process of its own as kfp.local starts steps, joins it instead of
starting a Ray of its own, and the variable that tells it so is gone afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.core.raytrain.runner import local_cpus, shared_local_ray

STEP = """
import json
import ray
from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.core.raytrain.runner import local_ray

with local_ray(TrainRankerConfig(num_workers=1)):
    context = ray.get_runtime_context()
    print(json.dumps({"gcs": context.gcs_address, "cpus": ray.cluster_resources()["CPU"]}))
"""


@pytest.mark.slow
def test_a_step_started_inside_joins_the_shared_ray() -> None:
    config = TrainRankerConfig(num_workers=2)
    assert "RAY_ADDRESS" not in os.environ
    with shared_local_ray(config) as address:
        assert os.environ["RAY_ADDRESS"] == address
        step = subprocess.run(
            [sys.executable, "-c", STEP], capture_output=True, text=True, check=True
        )
        seen = json.loads(step.stdout.strip().splitlines()[-1])
    # The step's Ray is the shared one (its address, its size), not one sized for one worker.
    assert seen == {"gcs": address, "cpus": float(local_cpus(config))}
    assert "RAY_ADDRESS" not in os.environ
