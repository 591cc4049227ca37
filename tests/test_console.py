"""The pipeline console (``pipelines/console.py``) on a tiny two-step kfp.local pipeline: one line
per step, each step's whole output in its log file, epoch lines and warnings surfaced, and a
failed step's log ending on the console, and a step reused from ``kfp.local``'s cache.

No ``from __future__ import annotations``: KFP reads the components' annotations.
"""

import contextlib
import io
import re
from pathlib import Path

import pytest
from kfp import dsl, local
from rich.console import Console

from searchrank.pipelines.console import KFP_LOG, LOGS, State, follow_steps


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count_epochs(epochs: int, seen: dsl.Output[dsl.Artifact]) -> int:
    import warnings
    from pathlib import Path

    Path(seen.path).write_text(str(epochs))

    for epoch in range(epochs):
        print(f"(RayTrainWorker pid=1) epoch {epoch + 1}/{epochs} train_loss 0.5 val 0.7 0.1s")
    warnings.warn("the planted warning", UserWarning, stacklevel=1)
    return epochs


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def check(count: int, limit: int) -> None:
    if count > limit:
        raise ValueError(f"the planted failure: {count} epochs")


@dsl.pipeline(name="tiny")
def tiny(epochs: int, limit: int = 2) -> None:
    check(count=count_epochs(epochs=epochs).outputs["Output"], limit=limit)


def _run(
    tmp_path: Path, epochs: int, terminal: bool, limit: int = 2, cache: bool = False
) -> tuple[str, object]:
    output = io.StringIO()
    console = Console(file=output, force_terminal=terminal, width=160)
    root = tmp_path / "root"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        enable_caching=cache,
        cache_root=str(tmp_path / "cache"),
    )
    # The failing run raises once the console has shown it.
    with follow_steps(console, root) as run, contextlib.suppress(RuntimeError):
        tiny(epochs=epochs, limit=limit)
    return output.getvalue(), run


@pytest.mark.parametrize("terminal", [False, True], ids=["plain", "live"])
def test_each_step_gets_a_line_and_a_log_and_the_executor_json_stays_in_the_log(
    tmp_path: Path, terminal: bool
) -> None:
    shown, run = _run(tmp_path, epochs=2, terminal=terminal)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)

    assert [(s.name, s.state) for s in run.steps] == [  # type: ignore[attr-defined]
        ("count-epochs", State.DONE),
        ("check", State.DONE),
    ]
    for step in ("count-epochs", "check"):
        assert re.search(rf"✓ +{step} +0:\d\d", plain), plain
    # The latest epoch line is on the step's line; the planted warning is echoed beneath.
    assert "epoch 2/2 train_loss 0.5" in plain
    assert "count-epochs: " in plain and "the planted warning" in plain
    # None of kfp.local's executor input/output reaches the console ...
    for noise in ("executorInput", "parameterValues", "Executing task", "Streamed logs"):
        assert noise not in plain
    # ... it is in the steps' logs under the run's folder, with everything the step printed.
    logs = run.folder / LOGS  # type: ignore[attr-defined]
    count_log = (logs / "count-epochs.log").read_text()
    assert "parameterValues" in count_log and "epoch 1/2" in count_log
    assert "Task 'check' finished" not in count_log
    assert "Pipeline" in (logs / KFP_LOG).read_text()


def test_a_failed_step_shows_the_end_of_its_log(tmp_path: Path) -> None:
    shown, run = _run(tmp_path, epochs=3, terminal=False)

    assert [s.state for s in run.steps] == [State.DONE, State.FAILED]  # type: ignore[attr-defined]
    assert "✗ check" in shown
    assert "check failed" in shown and "logs/check.log" in shown
    assert "ValueError: the planted failure: 3 epochs" in shown


def test_a_step_reused_from_the_cache_is_shown_and_linked_into_the_run(tmp_path: Path) -> None:
    _run(tmp_path, epochs=3, terminal=False, cache=True)  # check fails; count-epochs is kept
    shown, run = _run(tmp_path, epochs=3, terminal=False, limit=5, cache=True)

    assert [(s.name, s.state) for s in run.steps] == [  # type: ignore[attr-defined]
        ("count-epochs", State.CACHED),
        ("check", State.DONE),
    ]
    assert re.search(r"↺ count-epochs +cached: outputs of tiny-", shown), shown
    folder = run.folder  # type: ignore[attr-defined]
    linked = folder / "count-epochs"
    assert linked.is_symlink() and linked.resolve().parent.name.startswith("tiny-")
    assert linked.resolve().parent != folder, "the outputs are the earlier run's"
    assert (linked / "seen").read_text() == "3"
    assert (folder / LOGS / "count-epochs.log").read_text().startswith("cached:")
