"""Following a ``kfp.local`` run on a console: one live line per step, each step's log in a file.

Left to itself, ``kfp.local`` prints every step's executor input and output JSON and everything
the step's process prints: some thousands of lines for the search-ranking pipeline, in which a
person cannot follow the run. :func:`follow_steps` sends all of it to files under the run's
folder instead (``<run>/logs/<step>.log``, and ``<run>/logs/kfp-local.log`` for what
``kfp.local`` prints between steps) and shows one line per step, under the run's folder:

    run folder: .searchrank/demo/runs/search-ranking-2026-12-02-08-24-19-538021 (…)
    ✓ train-ranker-op    1:31 epoch 12/30 train_loss 6.8272 val_ndcg@10 0.7952 5.5s
    ⠋ train-lightgbm-op  0:12 logs/train-lightgbm-op.log

The line carries the step's state, its elapsed time and either the latest epoch line that a
training step logged (:data:`EPOCH_LINE`, see ``core.raytrain.loop.report_epoch``) or the path
of its log in the run's folder. Warnings a step prints are echoed beneath the lines, so that a
real warning still shows (the few known-noisy ones are filtered where they arise:
``core.raytrain.runner.NOISY_RAY_LINES``, ``serving.bento.known_build_notices_silenced`` and
``pipelines.run.run_local``); a failed step's last lines are printed with the path of its log.

``kfp.local`` has no hook for a step's start and end, so :func:`follow_steps` wraps the one
function that runs a container step, ``kfp.local.task_dispatcher.run_single_task_implementation``
(the kfp version is pinned; ``tests/test_console.py`` fails if it moves). Steps run one at a
time there, so redirecting ``sys.stdout`` for a step's duration catches exactly its output.

A step that ``kfp.local``'s cache answers (``kfp.local.init(enable_caching=True)``) never reaches
that function; :func:`follow_steps` also wraps the one above it,
``kfp.local.orchestrator.task_executor.execute_single_task``, to show such a step as cached and
to link its folder from the earlier run into this run's folder, so that a run's folder holds
every step's outputs whether it ran them or reused them.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

LOGS = "logs"
"""The folder of step logs inside a run's folder."""
KFP_LOG = "kfp-local.log"
"""What ``kfp.local`` prints outside the steps (the run's start and end, importers, branches)."""
EPOCH_LINE = re.compile(r"\bepoch \d+/\d+\b.*$")
"""A training step's per-epoch line, as ``report_epoch`` prints it (after any Ray prefix)."""
WARNING_LINE = re.compile(r"\b[A-Z][A-Za-z]*Warning: |\bWARNING\b|\[W(?:ARN)?\]")
"""A line that reports a warning: Python's ``warnings``, ``logging`` and C++ libraries' forms."""
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FAILURE_TAIL = 30
"""Lines of a failed step's log printed on the console."""


class State(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CACHED = "cached"
    """Not run: ``kfp.local``'s step cache held its outputs from an earlier run."""


ICONS = {
    State.DONE: "[green]✓[/green]",
    State.FAILED: "[red]✗[/red]",
    State.CACHED: "[cyan]↺[/cyan]",
}


@dataclass
class Step:
    """One pipeline step as the console shows it."""

    name: str
    log: Path
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    state: State = State.RUNNING
    latest: str = ""
    warnings: int = 0

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started


def minutes(seconds: float) -> str:
    """``m:ss``, the way the step lines show elapsed time."""
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def shown_path(path: Path) -> str:
    """``path`` relative to the working folder when it lies under it (shorter on the line)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def log_name(step: Step) -> str:
    """A step's log as the step lines show it: relative to the run's folder, which the console
    names once at the start."""
    return f"{LOGS}/{step.log.name}"


class StepLog(io.TextIOBase):
    """The ``sys.stdout`` of a run: writes each line to the current step's log (or the run's
    ``kfp-local.log``) and tells the display about epoch lines and warnings."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self._on_line = on_line
        self._file: TextIO = io.StringIO()
        self._pending = ""
        self.before_first_step = self._file

    def switch(self, path: Path) -> None:
        """Send what follows to ``path`` (appending), after what was written so far."""
        self._flush_pending()
        previous = self._file
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8", buffering=1)  # readable while it runs
        if previous is self.before_first_step:
            self._file.write(self.before_first_step.getvalue())
        else:
            previous.close()

    def close_file(self) -> None:
        self._flush_pending()
        if self._file is not self.before_first_step:
            self._file.close()
            self._file = self.before_first_step = io.StringIO()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._file.write(text)
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._on_line(ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self._file.flush()

    def _flush_pending(self) -> None:
        if self._pending:
            self._on_line(ANSI.sub("", self._pending))
            self._pending = ""
        self._file.flush()


class StepDisplay:
    """The live step lines (or, off a terminal, one printed line per step's start and end)."""

    def __init__(self, console: Console) -> None:
        # A console of its own on the stream the caller's console writes to now: while the run
        # goes on, ``sys.stdout`` is the steps' log (a console without a file follows it).
        self.console = Console(
            file=console.file,
            force_terminal=console.is_terminal,
            color_system=console.color_system,  # type: ignore[arg-type]
            width=console.width,
        )
        self.steps: list[Step] = []
        self._spinners: dict[str, Spinner] = {}
        self._live: Live | None = None

    def __rich__(self) -> Group:
        width = max((len(step.name) for step in self.steps), default=0)
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(width=1)
        table.add_column(min_width=width, no_wrap=True)
        table.add_column(width=5, justify="right")
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        for step in self.steps:
            icon: Any = ICONS.get(step.state) or self._spinners.setdefault(
                step.name, Spinner("dots", style="cyan")
            )
            detail = Text(step.latest or log_name(step), style="dim")
            if step.warnings:
                plural = "s" if step.warnings > 1 else ""
                detail.append(f" ({step.warnings} warning{plural})", style="yellow")
            table.add_row(icon, step.name, minutes(step.elapsed), detail)
        return Group(table)

    @contextmanager
    def shown(self) -> Iterator[None]:
        if not self.console.is_terminal:
            yield
            return
        with Live(self, console=self.console, refresh_per_second=4, redirect_stdout=False) as live:
            self._live = live
            try:
                yield
            finally:
                self._live = None

    def started(self, step: Step) -> None:
        if not self.steps:
            self.console.print(
                f"run folder: [bold]{shown_path(step.log.parent.parent)}[/bold] "
                f"(each step's whole log: {LOGS}/<step>.log)",
                highlight=False,
            )
        self.steps.append(step)
        if self._live is None and step.state is State.RUNNING:
            self.console.print(f"▶ {step.name}  {log_name(step)}", highlight=False)

    def ended(self, step: Step) -> None:
        if self._live is None and step.state is State.CACHED:
            self.console.print(f"{ICONS[step.state]} {step.name}  {step.latest}", highlight=False)
        elif self._live is None:
            detail = f"  {step.latest}" if step.latest else ""
            self.console.print(
                f"{ICONS[step.state]} {step.name}  {minutes(step.elapsed)}{detail}",
                highlight=False,
            )
        if step.state is State.FAILED:
            tail = step.log.read_text(encoding="utf-8").splitlines()[-FAILURE_TAIL:]
            self.console.print(
                f"[red]{step.name} failed[/red]; the end of its log "
                f"([bold]{shown_path(step.log)}[/bold]):",
                highlight=False,
            )
            self.console.print(Text("\n".join(ANSI.sub("", t) for t in tail)), highlight=False)

    def note(self, step: Step | None, line: str) -> None:
        """Take in one line of output: an epoch line updates the step; a warning is echoed."""
        if step is None:
            return
        epoch = EPOCH_LINE.search(line)
        if epoch:
            step.latest = epoch.group(0).strip()
        elif WARNING_LINE.search(line):
            step.warnings += 1
            self.console.print(
                Text.assemble(("  ⚠ ", "yellow"), (f"{step.name}: ", "bold"), line.strip()[:300])
            )


@dataclass
class FollowedRun:
    """What :func:`follow_steps` learned about the run: its folder and its steps."""

    folder: Path | None = None
    steps: list[Step] = field(default_factory=list)


class StepFollower:
    """The wrappers :func:`follow_steps` puts around ``kfp.local``'s two step functions."""

    def __init__(self, console: Console, pipeline_root: Path) -> None:
        from kfp.local import task_dispatcher
        from kfp.local.orchestrator import task_executor

        self.pipeline_root = pipeline_root
        self.run = FollowedRun()
        self.display = StepDisplay(console)
        self.sink = StepLog(lambda line: self.display.note(self._current, line))
        self._current: Step | None = None
        self._ran = False
        self._run_task = task_dispatcher.run_single_task_implementation
        self._execute_task = task_executor.execute_single_task

    def _step(self, pipeline_resource_name: str, component_name: str, state: State) -> Step:
        from kfp.local import executor_input_utils

        folder = self.pipeline_root / pipeline_resource_name
        self.run.folder = folder
        name = executor_input_utils.get_local_task_resource_name(component_name)
        step = Step(name, folder / LOGS / f"{name}.log", state=state)
        self.run.steps.append(step)
        return step

    def run_step(self, **kwargs: Any) -> Any:
        """Wraps ``run_single_task_implementation``: a container step that runs."""
        from kfp.local.status import Status

        step = self._step(kwargs["pipeline_resource_name"], kwargs["component_name"], State.RUNNING)
        self._ran = True
        self.sink.switch(step.log)
        self._current = step
        self.display.started(step)
        status = Status.FAILURE
        try:
            outputs, status = self._run_task(**kwargs)
        finally:
            self.sink.switch(step.log.parent / KFP_LOG)
            self._current = None
            step.ended = time.monotonic()
            step.state = State.DONE if status == Status.SUCCESS else State.FAILED
            self.display.ended(step)
        return outputs, status

    def run_or_reuse(self, **kwargs: Any) -> Any:
        """Wraps ``execute_single_task``: a step that either runs (:meth:`run_step`) or comes
        from the cache, or an importer."""
        from kfp.local.status import Status

        self._ran = False
        outputs, status = self._execute_task(**kwargs)
        component = kwargs["task_spec"].component_ref.name
        executor = kwargs["executors"][kwargs["components"][component].executor_label]
        container = executor.WhichOneof("spec") == "container"
        if container and not self._ran and status == Status.SUCCESS:
            step = self._step(kwargs["pipeline_resource_name"], component, State.CACHED)
            step.ended = step.started
            step.latest = reuse_outputs(outputs, step.log.parent.parent, step.log)
            self.display.started(step)
            self.display.ended(step)
        return outputs, status

    def install(self) -> None:
        from kfp.local import task_dispatcher
        from kfp.local.orchestrator import task_executor

        task_dispatcher.run_single_task_implementation = self.run_step
        task_executor.execute_single_task = self.run_or_reuse

    def uninstall(self) -> None:
        from kfp.local import task_dispatcher
        from kfp.local.orchestrator import task_executor

        task_dispatcher.run_single_task_implementation = self._run_task
        task_executor.execute_single_task = self._execute_task


@contextmanager
def follow_steps(console: Console, pipeline_root: Path) -> Iterator[FollowedRun]:
    """Show the steps of the ``kfp.local`` runs started in the block (see the module docstring).

    Yields:
        The run's folder (once its first step started) and steps, for the caller to read after.
    """
    follower = StepFollower(console, pipeline_root)
    follower.install()
    try:
        with follower.display.shown(), redirect_stdout(follower.sink):
            yield follower.run
    finally:
        follower.uninstall()
        follower.sink.close_file()


def reuse_outputs(outputs: dict[str, Any], folder: Path, log: Path) -> str:
    """Link the folders of a cached step's output artifacts into the run's ``folder`` and say so
    in the step's ``log``; returns the line the console shows for the step."""
    artifacts = [a for v in outputs.values() for a in (v if isinstance(v, list) else [v])]
    sources = sorted({Path(a.uri).parent for a in artifacts if getattr(a, "uri", "")})
    for source in sources:
        link = folder / source.name
        if source.parent != folder and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source, target_is_directory=True)
    runs = sorted({source.parent.name for source in sources})
    line = f"cached: outputs of {', '.join(runs) or 'an earlier run'}"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        f"{line}\n(kfp.local's step cache; the step did not run)\n"
        + "".join(f"{source}\n" for source in sources),
        encoding="utf-8",
    )
    return line
