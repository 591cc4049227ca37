"""The ``searchrank`` command-line tool.

Every command imports its heavy dependencies (Feast, Ray, torch, ...) only when it runs, so
``searchrank --help`` is instant. Bad input exits with status 2 and a message that names the
field, the value and the rule; a command that ran and found a problem exits with status 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from searchrank.components.experiment.config import ExperimentConfig
from searchrank.components.validate_data.config import ValidationConfig
from searchrank.core.errors import InputError
from searchrank.core.names import NAMESPACE, RANKER_FEATURE_SERVICE
from searchrank.pipelines.ltr import LTR_RANKER
from searchrank.pipelines.run import StepFailedError

app = typer.Typer(
    help="searchrank: Kubeflow components for search retrieval and ranking.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
features_app = typer.Typer(
    help="Feast feature repository: create, materialize, fetch.", no_args_is_help=True
)
ingest_app = typer.Typer(
    help="Convert real ranking datasets into searchrank's format.", no_args_is_help=True
)
components_app = typer.Typer(help="KFP component YAML files.", no_args_is_help=True)
app.add_typer(features_app, name="features")
app.add_typer(ingest_app, name="ingest")
app.add_typer(components_app, name="components")

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
VALIDATION = ValidationConfig()
"""The defaults of ``searchrank validate``'s thresholds."""
EXPERIMENT = ExperimentConfig()
"""The defaults of ``searchrank experiment``."""


def reports_input_errors(command: F) -> F:
    """Turn an :class:`InputError` into a one-line message and exit status 2, and a failed
    pipeline step (whose log's end the console already showed) into one with exit status 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as error:
            err_console.print(f"[red]error:[/red] {error}")
            raise typer.Exit(2) from error
        except StepFailedError as error:
            err_console.print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(1) from error

    return wrapper  # type: ignore[return-value]


def _generator_config(
    searches: int,
    seed: int,
    days: int,
    end_date: str | None,
    old_ranker_popularity: float | None = None,
) -> Any:
    """The generator's configuration from the commands' options (its defaults where None)."""
    from searchrank.features.generator.config import GeneratorConfig

    end = None
    if end_date:
        try:
            end = date.fromisoformat(end_date)
        except ValueError as error:
            raise InputError("--end-date", end_date, "must be a date like 2026-11-01") from error
    config = GeneratorConfig(searches=searches, seed=seed, days=days, end_date=end)
    if old_ranker_popularity is None:
        return config
    return dataclasses.replace(config, old_ranker_popularity=old_ranker_popularity)


Searches = Annotated[int, typer.Option(help="Number of searches to simulate.")]
Seed = Annotated[
    int, typer.Option(help="Random seed; the same seed and end date give identical files.")
]
Days = Annotated[int, typer.Option(help="Days of logs.")]
EndDate = Annotated[
    str | None,
    typer.Option(help="Last day (exclusive) of the logs, YYYY-MM-DD; default today (UTC)."),
]


@app.command()
@reports_input_errors
def dataset(
    out: Annotated[Path, typer.Option(help="Folder to write the parquet tables into.")],
    searches: Searches = 20_000,
    seed: Seed = 7,
    days: Days = 35,
    end_date: EndDate = None,
    training_set: Annotated[
        Path | None,
        typer.Option(help="Also fetch the ranker_v1 training set through Feast into this file."),
    ] = None,
    old_ranker_popularity: Annotated[
        float | None,
        typer.Option(
            help="Weight of popularity beside the text match in the order the logged (old) "
            "ranker showed candidates (the generator's default when not given); larger values "
            "log a popularity-heavy old ranker, whose position bias misleads a model more."
        ),
    ] = None,
) -> None:
    """Generate the synthetic music-search logs and daily feature snapshots."""
    from rich.progress import Progress

    from searchrank.features.generator.generate import generate

    config = _generator_config(searches, seed, days, end_date, old_ranker_popularity)
    with Progress(console=console) as progress:
        task = progress.add_task("simulating days", total=None)
        manifest = generate(config, out, lambda d, t: progress.update(task, completed=d, total=t))
    for table, rows in manifest.rows.items():
        console.print(f"{table:>16}: {rows:,} rows")
    console.print(f"wrote {out}")
    if training_set is not None:
        import tempfile

        from searchrank.components.fetch_features.logic import fetch_features
        from searchrank.core.contract import contract_beside
        from searchrank.features import tables
        from searchrank.features.store import apply_definitions, create_repo, open_store

        with tempfile.TemporaryDirectory(prefix="searchrank-repo-") as repo:
            apply_definitions(open_store(create_repo(Path(repo), out)))
            entities = out / tables.file_name(tables.IMPRESSIONS)
            summary = fetch_features(entities, Path(repo), RANKER_FEATURE_SERVICE, training_set)
        console.print(
            f"wrote the {RANKER_FEATURE_SERVICE} training set to {training_set} "
            f"({summary.rows:,} rows, {len(summary.feature_columns)} feature columns) and its "
            f"feature contract to {contract_beside(training_set)}"
        )


@app.command()
def validate(
    data: Annotated[Path, typer.Option(help="The training set (parquet) to check.")],
    reference: Annotated[
        Path | None, typer.Option(help="A reference training set for the drift check.")
    ] = None,
    contract: Annotated[
        Path | None,
        typer.Option(
            help="Its feature contract (default: the one fetch wrote beside it, "
            "DATA's name with .feature_contract.json)."
        ),
    ] = None,
    window_start: Annotated[str, typer.Option(help="Earliest allowed event time, ISO 8601.")] = "",
    window_end: Annotated[str, typer.Option(help="End of the allowed event times, ISO 8601.")] = "",
    max_list_length: Annotated[
        int, typer.Option(help="Most candidates a search may have.")
    ] = VALIDATION.max_list_length,
    min_positive_share: Annotated[
        float, typer.Option(help="Least share of searches with a positive label.")
    ] = VALIDATION.min_positive_share,
    report_dir: Annotated[
        Path | None, typer.Option(help="Write the JSON result, HTML report and Data Docs here.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line listing the failed expectations.")
    ] = False,
) -> None:
    """Check a training set against its data contract: exit 0 if it passes, 1 if it fails."""
    import json

    from searchrank.components.validate_data.config import ValidationConfig
    from searchrank.components.validate_data.logic import ReportPaths, validate_and_report
    from searchrank.components.validate_data.logic import validate as check
    from searchrank.components.validate_data.report import markdown
    from searchrank.core.contract import FeatureContract, contract_beside
    from searchrank.core.schema import parse_time

    try:
        if not data.is_file():
            raise InputError("data", str(data), "must be an existing parquet file")
        columns = FeatureContract.load(contract or contract_beside(data))
        config = ValidationConfig(
            window_start=parse_time("--window-start", window_start),
            window_end=parse_time("--window-end", window_end),
            max_list_length=max_list_length,
            min_positive_share=min_positive_share,
        )
        if report_dir is not None:
            paths = ReportPaths(
                report_dir / "validation.json",
                report_dir / "validation.html",
                report_dir / "validation.md",
                report_dir / "data_docs",
            )
            report = validate_and_report(data, columns, config, paths, reference)
        else:
            report = check(data, columns, config, reference)
    except InputError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    (err_console if as_json else console).print(markdown(report, config))
    if as_json:
        print(json.dumps({"passed": report.success, "failed": report.failed()}, default=str))
    raise typer.Exit(0 if report.success else 1)


@features_app.command("init")
@reports_input_errors
def features_init(
    repo: Annotated[Path, typer.Option(help="Folder for the new Feast repository.")],
    data: Annotated[Path, typer.Option(help="Folder holding the generated or ingested tables.")],
) -> None:
    """Create a Feast repository over a data folder and apply searchrank's definitions."""
    from searchrank.features.store import apply_definitions, create_repo, open_store

    apply_definitions(open_store(create_repo(repo, data)))
    console.print(f"applied searchrank definitions in {repo}")


@features_app.command("apply")
@reports_input_errors
def features_apply(
    repo: Annotated[Path, typer.Option(help="Folder holding the feature_store.yaml to use.")],
) -> None:
    """Register searchrank's definitions in an existing repository's registry (on a cluster:
    the SQL registry that feature_store.cluster.yaml names; run once per release)."""
    from searchrank.features.store import apply_definitions, open_store

    apply_definitions(open_store(repo))
    console.print(f"applied searchrank definitions to the registry of {repo}")


@features_app.command("materialize")
@reports_input_errors
def features_materialize(
    repo: Annotated[Path, typer.Option(help="Feast repository folder.")],
    end: Annotated[
        str, typer.Option(help="Materialize up to this ISO 8601 time; empty for now.")
    ] = "",
) -> None:
    """Incrementally load the online store up to END."""
    from searchrank.core.schema import parse_time
    from searchrank.features.materialize import materialize_features

    console.print(materialize_features(repo, parse_time("--end", end)).markdown())


@features_app.command("fetch")
@reports_input_errors
def features_fetch(
    repo: Annotated[Path, typer.Option(help="Feast repository folder.")],
    entities: Annotated[Path, typer.Option(help="Entity dataframe (parquet).")],
    out: Annotated[
        Path,
        typer.Option(
            help="Where to write the training set (parquet); its feature contract goes beside "
            "it, with .feature_contract.json for the suffix."
        ),
    ],
    feature_service: Annotated[
        str, typer.Option(help="Feast feature service.")
    ] = RANKER_FEATURE_SERVICE,
) -> None:
    """Build a point-in-time-correct training set."""
    from searchrank.components.fetch_features.logic import fetch_features

    console.print(fetch_features(entities, repo, feature_service, out).markdown())


@ingest_app.command("letor")
@reports_input_errors
def ingest_letor(
    data: Annotated[Path, typer.Argument(help="LETOR / SVMlight file.")],
    out: Annotated[Path, typer.Option(help="Output parquet file.")],
    query_file: Annotated[
        Path | None, typer.Option(help="LightGBM-style .query group file.")
    ] = None,
) -> None:
    """Convert a LETOR / SVMlight ranking file into searchrank's ranking-dataset format."""
    from searchrank.features.adapters.letor import read_letor, write_ranking_dataset

    table = read_letor(data, query_file)
    write_ranking_dataset(table, out)
    console.print(f"wrote {table.num_rows:,} rows to {out}")


@ingest_app.command("lastfm")
@reports_input_errors
def ingest_lastfm(
    source: Annotated[Path, typer.Argument(help="The hetrec2011-lastfm-2k folder.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
) -> None:
    """Convert Last.fm HetRec 2011 into a tag-search ranking dataset."""
    from searchrank.features.adapters.lastfm import convert_lastfm

    for name, rows in convert_lastfm(source, out).items():
        console.print(f"{name:>16}: {rows:,} rows")


@app.command()
@reports_input_errors
def ltr(
    train: Annotated[Path, typer.Option(help="Training file (LETOR / SVMlight).")],
    test: Annotated[Path, typer.Option(help="Test file, scored once.")],
    valid: Annotated[
        Path | None, typer.Option(help="Validation file (default: 15% of training searches).")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Ray Train workers for the transformer.")
    ] = LTR_RANKER.num_workers,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the JSON result line.")
    ] = False,
) -> None:
    """Train the transformer and a tuned LightGBM on a LETOR dataset and compare their NDCG."""
    import json
    from dataclasses import replace

    from searchrank.pipelines.ltr import run_ltr

    def log(line: str) -> None:
        if not as_json:
            err_console.print(line)

    result = run_ltr(train, test, valid, replace(LTR_RANKER, num_workers=workers), log=log)
    print(json.dumps(result))


@app.command()
@reports_input_errors
def experiment(
    test: Annotated[Path, typer.Option(help="Held-out searches: a test split (parquet).")],
    ground_truth: Annotated[
        Path,
        typer.Option(help="The generated data folder, or its ground_truth.parquet."),
    ],
    champion: Annotated[
        str,
        typer.Option(
            help="The model in production: a ranker or LightGBM model folder, an exported "
            "Bento, or a Bento or model tag."
        ),
    ],
    challenger: Annotated[str, typer.Option(help="The model to test, in the same forms.")],
    pre_period: Annotated[
        Path | None, typer.Option(help="Rows before the test (the train split), for CUPED.")
    ] = None,
    minimum_detectable_effect: Annotated[
        float, typer.Option(help="Smallest relative change of streams per search to detect.")
    ] = EXPERIMENT.minimum_detectable_effect,
    power: Annotated[float, typer.Option(help="Wanted power of the A/B test.")] = EXPERIMENT.power,
    seed: Annotated[int, typer.Option(help="Seed of the simulated reactions.")] = EXPERIMENT.seed,
    report_dir: Annotated[
        Path | None, typer.Option(help="Write experiment.json, .html and .md here.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line: the decision and sessions.")
    ] = False,
) -> None:
    """Champion against challenger on simulated listeners: interleaving, an A/B test with
    guardrails, the ship decision and the searches each method needs. Exit 0 when the
    challenger ships, 1 when it does not, 2 on bad input."""
    import json
    import tempfile
    from dataclasses import replace

    from searchrank.components.experiment.logic import run_experiment, write_report_json
    from searchrank.components.experiment.report import html_page, markdown
    from searchrank.core.champion import resolve_champion

    def model_folder(reference: str, name: str) -> Path:
        """A local model folder as it is (a ranker or LightGBM); anything else as a champion
        reference (a Bento, a tag, a checkpoint on object storage)."""
        if Path(reference).is_dir():
            return Path(reference)
        return resolve_champion(reference, Path(tempfile.mkdtemp(prefix=f"{name}-"))).model_dir

    config = replace(
        EXPERIMENT, minimum_detectable_effect=minimum_detectable_effect, power=power, seed=seed
    )
    report = run_experiment(
        test,
        ground_truth,
        model_folder(champion, "champion"),
        model_folder(challenger, "challenger"),
        config,
        pre_period_path=pre_period,
    )
    (err_console if as_json else console).print(markdown(report))
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        write_report_json(report, report_dir / "experiment.json")
        (report_dir / "experiment.html").write_text(html_page(report))
        (report_dir / "experiment.md").write_text(markdown(report))
    if as_json:
        print(json.dumps({"decision": report.decision["verdict"], **report.metrics()}))
    raise typer.Exit(0 if report.decision["ship"] else 1)


@components_app.command("compile")
def components_compile(
    root: Annotated[
        Path | None, typer.Option(help="Components folder (default: the package's).")
    ] = None,
) -> None:
    """Recompile every component's YAML file."""
    from searchrank.pipelines.components import COMPONENTS_DIR, compile_all

    for path in compile_all(root or COMPONENTS_DIR):
        console.print(f"compiled {path}")


@app.command(name="compile")
@reports_input_errors
def compile_(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where the IR YAML goes.")] = Path(
        "search_ranking.yaml"
    ),
    pipeline_root: Annotated[
        str, typer.Option(help="Artifact storage of the runs (s3://, gs://, minio://).")
    ] = "",
) -> None:
    """Compile the search-ranking pipeline (with Kubernetes placement) to IR YAML."""
    from searchrank.pipelines.run import compile_pipeline

    console.print(f"wrote {compile_pipeline(output, pipeline_root or None)}")


@app.command()
@reports_input_errors
def run(
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A pipeline argument, name=value.")
    ] = None,
    host: Annotated[str, typer.Option(help="Kubeflow Pipelines API URL.")] = "",
    local: Annotated[bool, typer.Option("--local", help="Run with kfp.local here.")] = False,
    cache: Annotated[
        bool,
        typer.Option(
            help="Reuse the outputs of steps that finished in earlier runs with the same inputs "
            "(Kubeflow's cache; locally kfp.local's, per version of the code, under "
            "--pipeline-root). Data changed in place under the same URI needs --no-cache."
        ),
    ] = True,
    namespace: Annotated[
        str, typer.Option(help="Kubeflow runs: the namespace of searchrank's manifests.")
    ] = NAMESPACE,
    pipeline_root: Annotated[Path, typer.Option(help="Local runs: where artifacts go.")] = Path(
        ".searchrank/runs"
    ),
    list_params: Annotated[
        bool, typer.Option("--list-params", help="List the pipeline's parameters and stop.")
    ] = False,
) -> None:
    """Submit the pipeline to Kubeflow (--host URL) or run it here (--local)."""
    import tempfile

    from searchrank.pipelines.run import (
        check_arguments,
        compile_pipeline,
        parse_arguments,
        pipeline_parameters,
        run_local,
        submit,
    )

    if list_params:
        for p in pipeline_parameters().values():
            shown = "required" if p.required else f"default {p.default!r}"
            console.print(f"[bold]{p.name}[/bold] ({p.type}, {shown})", highlight=False)
            console.print(f"    {p.help}", highlight=False, markup=False)
        return
    if bool(host) == local:
        raise InputError("--host/--local", host or local, "give exactly one of them")
    arguments = parse_arguments(param or [])
    check_arguments(arguments)
    if local:
        console.print(f"run folder: {run_local(arguments, pipeline_root, console, cache=cache)}")
        return
    with tempfile.TemporaryDirectory() as folder:
        package = compile_pipeline(Path(folder) / "search_ranking.yaml")
        run_id = submit(host, package, arguments, namespace=namespace, enable_caching=cache)
        console.print(f"submitted run {run_id} in namespace {namespace}")


STOP_SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT")
"""The signals that stop ``searchrank serve``: a container runtime's or systemd's stop, a closed
terminal, Ctrl-C."""


@contextmanager
def _stop_signals_exit() -> Iterator[None]:
    """Within the block, turn the first stop signal into ``SystemExit(128 + signal)`` so that
    cleanup (``finally``, context managers) runs, and ignore the next ones so that they cannot
    cut that cleanup short (it is bounded; SIGKILL still ends everything). Python's own
    SIGTERM and SIGHUP end the process without any cleanup, and as a container's PID 1 it
    ignores them. The previous handlers come back when the block ends."""
    import signal

    signals = [getattr(signal, name) for name in STOP_SIGNALS]
    previous = {s: signal.getsignal(s) for s in signals}

    def stop(signum: int, _frame: object) -> None:
        for s in signals:
            signal.signal(s, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    for s in signals:
        signal.signal(s, stop)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


@app.command()
@reports_input_errors
def serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=1, max=65_535)] = 3000,
    bento: Annotated[
        str, typer.Option(help="Bento tag; the latest searchrank Bento when empty.")
    ] = "",
    feature_repo: Annotated[Path, typer.Option(help="Feast repository the service reads.")] = Path(
        ".searchrank/demo/feature_repo"
    ),
) -> None:
    """Serve a packaged Bento with ``bentoml serve`` on 127.0.0.1 until stopped.

    SIGTERM, SIGHUP or Ctrl-C (SIGINT) stops the server and every process it started, then
    exits with status 128 + the signal's number (143, 129, 130), as a shell reports a process
    that a signal ended; a server that exits on its own makes it exit with status 1.
    """
    from searchrank.serving.bento import latest_bento, preflight, serve

    with _stop_signals_exit():
        tag = bento or latest_bento()
        preflight(tag, feature_repo)
        console.print(f"starting [bold]{tag}[/bold] on http://127.0.0.1:{port} (Ctrl-C stops it)")
        try:
            with serve(tag, feature_repo, port=port) as running:
                console.print(
                    f"ready: POST {running.url}/rank, {running.url}/search; log {running.log_path}"
                )
                status = running.process.wait()
        except SystemExit:
            console.print("stopped: the server and its workers have exited")
            raise
    err_console.print(
        f"[red]error:[/red] bentoml serve exited on its own with status {status}; "
        f"see its log {running.log_path}",
        highlight=False,
    )
    raise typer.Exit(1)


@app.command()
@reports_input_errors
def demo(
    workdir: Annotated[Path, typer.Option(help="Folder for the demo's data and outputs.")] = Path(
        ".searchrank/demo"
    ),
    searches: Searches = 20_000,
    seed: Seed = 7,
    days: Days = 35,
) -> None:
    """Run the embedded demo end to end on this machine."""
    from searchrank.pipelines.demo import run_demo

    run_demo(workdir, _generator_config(searches, seed, days, None), console)
