"""Stands in for ``python3`` in a cluster rehearsal: each kfp.local step gets its pod's
environment and config-map volumes, as Kubernetes would give them, and nothing more.

kfp.local runs every step as ``<sys.executable> -m kfp.dsl.executor_main --executor_input
JSON ...`` with the environment of the process that started the pipeline, and it ignores the
Kubernetes platform spec. A rehearsal points ``sys.executable`` at this script while the
pipeline runs (:func:`cluster.fake_cluster.install_shim`). It finds the step from its executor
input (the
output file lies in ``<pipeline root>/<run>/<task>/``), looks the task up in the plan the test
wrote (per task: variables, and files of the config maps it mounts), writes the files, runs the
real interpreter with the task's variables added, and removes the files again. Anything that
is not a step runs unchanged. Standard library only: it starts before the venv's packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PLAN_ENV = "SEARCHRANK_REHEARSAL_PLAN"


def task_of(argv: list[str]) -> str | None:
    """The kfp.local task that ``argv`` runs, if it runs one."""
    if "--executor_input" not in argv:
        return None
    executor = json.loads(argv[argv.index("--executor_input") + 1])
    output_file = executor.get("outputs", {}).get("outputFile")
    return Path(output_file).parent.name if output_file else None


def main() -> int:
    plan = json.loads(Path(os.environ[PLAN_ENV]).read_text())
    argv = sys.argv[1:]
    task = plan["tasks"].get(task_of(argv) or "")
    if task is None:
        os.execv(plan["python"], [plan["python"], *argv])
    written = []
    for path, content in task["files"].items():
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content)
        written.append(file)
    try:
        return subprocess.call([plan["python"], *argv], env={**os.environ, **task["env"]})
    finally:
        for file in written:
            file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
