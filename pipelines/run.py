"""Compile the search-ranking pipeline, submit it to Kubeflow, or run it with ``kfp.local``."""

from __future__ import annotations

import re
import textwrap
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from searchrank.core.errors import InputError
from searchrank.core.names import NAMESPACE, PIPELINE_SERVICE_ACCOUNT


def compile_pipeline(output: Path, pipeline_root: str | None = None) -> Path:
    """Write the pipeline's IR YAML (with Kubernetes placement) to ``output``."""
    from kfp import compiler

    from searchrank.pipelines.search_ranking import DEFAULT_PIPELINE_ROOT, build_pipeline

    output.parent.mkdir(parents=True, exist_ok=True)
    pipeline = build_pipeline(cluster=True, pipeline_root=pipeline_root or DEFAULT_PIPELINE_ROOT)
    compiler.Compiler().compile(pipeline, str(output))
    return output


def parse_arguments(pairs: list[str]) -> dict[str, Any]:
    """``name=value`` pairs to pipeline arguments; values are parsed as JSON when they can be."""
    import json

    arguments: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError("param", pair, "must look like name=value")
        try:
            arguments[name] = json.loads(value)
        except json.JSONDecodeError:
            arguments[name] = value
    return arguments


@dataclass(frozen=True)
class Parameter:
    """One parameter of the pipeline, as ``searchrank run --list-params`` shows it."""

    name: str
    type: str
    default: Any
    required: bool
    help: str


def pipeline_parameters() -> dict[str, Parameter]:
    """The pipeline's parameters in order, from its signature, with their meaning from its
    docstring's ``Parameters:`` section."""
    from searchrank.pipelines.search_ranking import local_search_ranking_pipeline

    pipeline = local_search_ranking_pipeline
    helps = parameter_help(pipeline.pipeline_func.__doc__ or "")
    inputs = pipeline.component_spec.inputs or {}
    return {
        name: Parameter(name, str(s.type), s.default, not s.optional, helps.get(name, ""))
        for name, s in inputs.items()
    }


def parameter_help(docstring: str) -> dict[str, str]:
    """``name: meaning`` entries of a docstring's ``Parameters:`` section; an entry may name
    several parameters (``a, b: ...`` or ``a / b: ...``) and continue on more deeply indented
    lines."""
    _, _, section = docstring.partition("Parameters:")
    helps: dict[str, str] = {}
    names: list[str] = []
    for line in textwrap.dedent(section).splitlines():
        entry = re.match(r"^([a-z_0-9]+(?:(?:, | / )[a-z_0-9]+)*): (.*)", line)
        if entry:
            names = re.split(r", | / ", entry.group(1))
            helps |= dict.fromkeys(names, entry.group(2))
        elif line.startswith(" ") and names:
            helps |= {n: f"{helps[n]} {line.strip()}" for n in names}
    return helps


def check_arguments(arguments: Mapping[str, Any]) -> None:
    """Refuse arguments the pipeline does not take, and a run without its required ones.

    Raises:
        InputError: an unknown name (the message lists the known ones) or a missing required one.
    """
    parameters = pipeline_parameters()
    unknown = sorted(set(arguments) - set(parameters))
    if unknown:
        raise InputError(
            "param", unknown, f"must be among the pipeline's parameters: {sorted(parameters)}"
        )
    missing = [n for n, p in parameters.items() if p.required and n not in arguments]
    if missing:
        raise InputError(
            "param",
            missing,
            "the pipeline needs these: pass each as -p name=value "
            "(searchrank run --list-params lists every parameter)",
        )


def submit(
    host: str,
    package: Path,
    arguments: Mapping[str, Any],
    *,
    experiment: str = "searchrank",
    namespace: str = NAMESPACE,
    enable_caching: bool = True,
) -> str:
    """Submit a compiled pipeline to the Kubeflow Pipelines API at ``host``; returns the run id.

    The run's pods start in ``namespace`` under the service account that may manage RayJobs
    (:data:`PIPELINE_SERVICE_ACCOUNT`): the namespace holding the manifests' secrets, config maps
    and network policies (a Kubeflow profile of that name in a multi-user installation).
    """
    import kfp

    client = kfp.Client(host=host, namespace=namespace)
    run = client.create_run_from_pipeline_package(
        str(package),
        arguments=dict(arguments),
        experiment_name=experiment,
        namespace=namespace,
        enable_caching=enable_caching,
        service_account=PIPELINE_SERVICE_ACCOUNT,
    )
    return str(run.run_id)


class StepFailedError(RuntimeError):
    """A step of a local run failed; its log holds the whole story."""

    def __init__(self, step: str, log: Path) -> None:
        self.step, self.log = step, log
        super().__init__(f"step {step} failed; its log: {log}")


def code_fingerprint() -> str:
    """A hash of searchrank's Python sources: a changed step must run again."""
    import hashlib

    import searchrank.components
    import searchrank.core
    import searchrank.features
    import searchrank.pipelines
    import searchrank.serving

    digest = hashlib.sha256()
    for package in (
        searchrank.core,
        searchrank.components,
        searchrank.features,
        searchrank.pipelines,
        searchrank.serving,
    ):
        root = Path(next(iter(package.__path__)))
        for source in sorted(root.rglob("*.py")):
            digest.update(source.read_bytes())
    return digest.hexdigest()


STEP_CACHE = ".step-cache"
"""The folder under a local run's ``pipeline_root`` where ``kfp.local`` keeps finished steps'
outputs for later runs."""


def step_cache_root(pipeline_root: Path, scope: str = "") -> Path:
    """Where local runs of this code keep and look up finished steps' outputs.

    ``kfp.local``'s cache key, like Kubeflow's, holds a step's command, parameters and input
    artifacts' names, not the code the command imports nor the contents of a file named by a
    parameter. So the cache is kept per version of searchrank's code (:func:`code_fingerprint`)
    and per ``scope``: what the caller knows of its inputs' contents (the demo passes the
    configuration its data was generated from).
    """
    import hashlib

    digest = hashlib.sha256(f"{code_fingerprint()}\0{scope}".encode()).hexdigest()
    return pipeline_root / STEP_CACHE / digest[:16]


def run_local(
    arguments: Mapping[str, Any],
    pipeline_root: Path,
    console: Console | None = None,
    *,
    cache: bool = True,
    cache_scope: str = "",
) -> Path:
    """Run the pipeline's local graph with ``kfp.local`` (subprocess runner, this environment),
    showing one line per step on ``console`` and writing each step's log under the run's
    folder (:mod:`.console`).

    With ``cache``, a step whose code, parameters and inputs are those of a step that finished
    in an earlier run here (under the same ``cache_scope``, see :func:`step_cache_root`) is not
    run again: its outputs are reused and its folder linked into this run's. The steps that
    write the online store and package the Bento, and the report, always run. So a run that
    failed in a late step, run again, redoes only what failed and what follows it.

    Returns:
        The run's folder under ``pipeline_root`` (one folder per task and output, and ``logs/``).

    Raises:
        StepFailedError: a step failed; the console showed the end of its log.
    """
    from kfp import local

    from searchrank.pipelines.console import State, follow_steps
    from searchrank.pipelines.search_ranking import local_search_ranking_pipeline

    # The steps name the cluster's image, which kfp.local warns about once per step; locally
    # they run in this environment on purpose (the image is built from the same package).
    warnings.filterwarnings(
        "ignore", "You may be attemping to run a task that uses custom", RuntimeWarning
    )
    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root.resolve()),
        raise_on_error=True,
        enable_caching=cache,
        cache_root=str(step_cache_root(pipeline_root, cache_scope).resolve()),
    )
    with follow_steps(console or Console(), pipeline_root.resolve()) as run:
        try:
            local_search_ranking_pipeline(**arguments)
        except RuntimeError as error:
            failed = [s for s in run.steps if s.state is State.FAILED]
            if failed:
                raise StepFailedError(failed[-1].name, failed[-1].log) from error
            raise
    if run.folder is None:
        raise RuntimeError(f"kfp.local ran no step under {pipeline_root}")
    return run.folder
