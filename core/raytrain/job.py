"""Entrypoint of the Ray job that trains on a cluster: ``python -m ... job SPEC_PATH``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from searchrank.core.raytrain.jobs import RESULT
from searchrank.core.raytrain.runner import fit, quiet_ray_environment


def main(spec_path: Path) -> None:
    quiet_ray_environment()
    import ray

    spec = json.loads(spec_path.read_text())
    storage = spec_path.parent
    ray.init(address="auto")
    best, history = fit(spec, storage, spec["run_name"])
    (storage / RESULT).write_text(json.dumps({"best_checkpoint": best, "history": history}))
    print(f"best checkpoint: {best}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
