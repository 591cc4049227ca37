"""The search-ranking pipeline: logged searches to a validated, trained, evaluated, packaged ranker.

No ``from __future__ import annotations`` here: KFP reads the pipeline's annotations.

Graph::

    materialize_features                      (its own branch: the online store for serving)
    fetch_features → validate_data → split_dataset → train_intent (the splits + intent features)
                        ┌→ train_lightgbm ─┐
       train_intent ────┤                  ├→ evaluate
                        └→ train_ranker ───┘
    split_dataset → train_retriever → build_index → evaluate_retrieval (with the intent model)
    evaluate → dsl.If(blessed) → package_service (+ retriever, index, intent, routing as
                                 evaluate_retrieval blessed them) → run_report (with the Bento)
               dsl.Else          → run_report

The ranker's blessing decides whether a Bento is built at all; the retriever's and the intent
model's own blessings (``evaluate_retrieval``) decide whether the Bento's ``/search`` fuses the
dense candidates and routes the fusion by intent, or keeps BM25.

Every run is judged against the model in production too: ``champion`` names it (a Bento, an
exported ``.bento`` or a ranker checkpoint), and ``evaluate`` blesses only a candidate that
beats it as well as the baselines; ``reference_training_set`` names the training set it was
trained on, against which ``validate_data`` checks drift.

The same function compiles for Kubeflow and runs under ``kfp.local``. Kubernetes settings
(:mod:`.placement`: every task's size and timeout, the train steps' GPU and node placement from
``plan_training``, Feast's configuration and the stores' credentials) are added only when
``cluster=True`` (:func:`build_pipeline`): ``kfp.local`` cannot schedule pods, so the local run
follows the same graph without them.
"""

from typing import Any

from kfp import dsl
from kfp.dsl import Dataset

from searchrank.components.build_index import build_index_op
from searchrank.components.evaluate import evaluate_op
from searchrank.components.evaluate.config import EvaluateConfig
from searchrank.components.evaluate_retrieval import evaluate_retrieval_op
from searchrank.components.evaluate_retrieval.config import RetrievalConfig
from searchrank.components.experiment import experiment_op
from searchrank.components.experiment.config import ExperimentConfig
from searchrank.components.fetch_features import fetch_features_op
from searchrank.components.materialize_features import materialize_features_op
from searchrank.components.package_service import package_service_op
from searchrank.components.package_service.config import PackageConfig
from searchrank.components.plan_training import plan_training_op
from searchrank.components.run_report import run_report_op
from searchrank.components.split_dataset import split_dataset_op
from searchrank.components.train_generative_retriever import train_generative_retriever_op
from searchrank.components.train_generative_retriever.config import TrainGenerativeConfig
from searchrank.components.train_intent import train_intent_op
from searchrank.components.train_lightgbm import train_lightgbm_op
from searchrank.components.train_ranker import train_ranker_op
from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.components.train_retriever import train_retriever_op
from searchrank.components.train_retriever.config import TrainRetrieverConfig
from searchrank.components.validate_data import validate_data_op
from searchrank.components.validate_data.config import ValidationConfig
from searchrank.core.lambdamart import LambdaMartConfig
from searchrank.core.names import FEAST_REPO_MOUNT, RANKER_FEATURE_SERVICE

PIPELINE_NAME = "search-ranking"

# The steps' configs are the one source of the pipeline's defaults (tests/cluster/test_defaults.py).
RANKER, RETRIEVER, LIGHTGBM = TrainRankerConfig(), TrainRetrieverConfig(), LambdaMartConfig()
GENERATIVE = TrainGenerativeConfig()
VALIDATION, EVALUATION = ValidationConfig(), EvaluateConfig()
RETRIEVAL, PACKAGING, EXPERIMENT = RetrievalConfig(), PackageConfig(), ExperimentConfig()

DEFAULT_PIPELINE_ROOT = "s3://searchrank-artifacts/pipeline-root"
"""Where a Kubeflow run keeps its artifacts unless ``searchrank compile --pipeline-root`` says
otherwise (MinIO, S3 or GCS)."""


def build_pipeline(cluster: bool, pipeline_root: str = DEFAULT_PIPELINE_ROOT) -> Any:
    """The pipeline function; with ``cluster`` it carries the Kubernetes settings and its
    pipeline root on object storage."""

    @dsl.pipeline(
        name=PIPELINE_NAME,
        pipeline_root=pipeline_root if cluster else None,
        description="Fetch point-in-time features, validate, train the transformer ranker and "
        "its baselines, the two-tower retriever with its Voyager index, the generative "
        "semantic-ID retriever and the query-intent model, evaluate each against the "
        "baselines and the champion, and package a blessed ranker as a Bento.",
    )
    def search_ranking(
        entities_uri: str,
        catalogue_uri: str,
        searches_uri: str,
        ground_truth_uri: str = "",
        feature_repo: str = FEAST_REPO_MOUNT,
        feature_service: str = RANKER_FEATURE_SERVICE,
        champion: str = "",
        reference_training_set: str = "",
        window_start: str = "",
        window_end: str = "",
        materialize_until: str = "",
        ray_address: str = "",
        work_dir: str = "",
        num_workers: int = RANKER.num_workers,
        cpus_per_worker: float = RANKER.cpus_per_worker,
        use_gpu: bool = RANKER.use_gpu,
        gpus_per_worker: float = RANKER.gpus_per_worker,
        train_memory: str = "16Gi",
        epochs: int = RANKER.epochs,
        d_model: int = RANKER.d_model,
        retriever_epochs: int = RETRIEVER.epochs,
        retriever_refit: bool = RETRIEVER.refit,
        retriever_catch_up_epochs: int = RETRIEVER.catch_up_epochs,
        generative_epochs: int = GENERATIVE.epochs,
        lightgbm_folds: int = LIGHTGBM.folds,
        lightgbm_num_leaves: list = list(LIGHTGBM.num_leaves),  # noqa: B006 (KFP reads it)
        lightgbm_min_data_in_leaf: list = list(LIGHTGBM.min_data_in_leaf),  # noqa: B006
        lightgbm_feature_fraction: list = list(LIGHTGBM.feature_fraction),  # noqa: B006
        min_positive_share: float = VALIDATION.min_positive_share,
        max_null_rate: float = VALIDATION.max_null_rate,
        min_gain_vs_baselines: float = EVALUATION.min_gain_vs_baselines,
        min_gain_vs_champion: float = EVALUATION.min_gain_vs_champion,
        min_retrieval_gain: float = RETRIEVAL.min_retrieval_gain,
        min_intent_gain: float = RETRIEVAL.min_intent_gain,
        bootstrap_samples: int = EVALUATION.bootstrap_samples,
        p99_budget_ms: float = PACKAGING.p99_budget_ms,
        experiment_min_effect: float = EXPERIMENT.minimum_detectable_effect,
        gpu_type: str = "nvidia.com/gpu",
        gpu_node_selector: dict = {"nvidia.com/gpu.present": "true"},  # noqa: B006
        gpu_toleration: dict = {  # noqa: B006
            "key": "nvidia.com/gpu",
            "operator": "Exists",
            "effect": "NoSchedule",
        },
        work_claim: str = "searchrank-work",
    ) -> None:
        """Parameters:

        entities_uri: the logged impressions (entity rows) to train on.
        catalogue_uri: one row per item, for the service's retriever.
        searches_uri: one row per search with its ``intent``, for the intent model.
        ground_truth_uri: simulated data only: the generator's ``ground_truth.parquet``. With
            it, a packaged ranker meets the champion (or, without one, the LambdaMART
            baseline) in a simulated online experiment (interleaving, an A/B test with
            guardrails, the ship decision); empty to skip the experiment.
        feature_repo: the Feast repository folder (``feature_store.yaml``); on a cluster the
            steps that open Feast mount the config map ``searchrank-feast`` there.
        feature_service: the feature service to train and serve on.
        champion: the ranker in production, which a candidate must beat: a Bento tag in the
            step's BentoML store, an exported ``.bento`` (a path or ``s3://`` URI, e.g. the
            ``bento`` artifact of the run that built it) or a ranker checkpoint folder; empty
            when there is none yet.
        reference_training_set: the champion's training set (a path or ``s3://`` URI of its
            parquet, e.g. that run's ``training_set`` artifact): validate_data checks drift
            against it; empty to skip the drift check.
        window_start / window_end: the event-time window validate_data enforces (ISO 8601).
        materialize_until: the time the online store is loaded until; empty for now.
        ray_address: empty for Ray inside the step; a Ray dashboard URL submits a Ray job;
            ``kuberay://NAMESPACE`` creates a RayJob on the cluster (both train steps).
        work_dir: storage that the Ray cluster and the steps share (required with ray_address):
            the steps write encoded data and checkpoints under ``ranker/``, ``retriever/`` and
            ``generative_retriever/``.
        num_workers, cpus_per_worker, use_gpu, gpus_per_worker: Ray Train's scaling (ranker,
            retriever and generative retriever).
        train_memory: the memory of a train step's pod on a cluster (a Kubernetes quantity).
        epochs, d_model: the ranker's most epochs and width.
        retriever_epochs: the retriever's most epochs.
        retriever_refit: serve a retriever refitted on train and valid together for the epochs
            validation chose (``train_retriever``'s ``refit``, the default; twice its training
            time).
        retriever_catch_up_epochs: unless refitted, the epochs the retriever's best checkpoint
            trains on train and valid together before it is served (0: served as chosen).
        generative_epochs: the generative retriever's most epochs.
        lightgbm_folds: the LambdaMART baseline's cross-validation folds.
        lightgbm_num_leaves, lightgbm_min_data_in_leaf, lightgbm_feature_fraction: its tuning
            grid (the product of the three lists).
        min_positive_share: validate_data's least share of searches with a positive label.
        max_null_rate: validate_data's largest share of missing values of a feature without a
            limit of its own.
        bootstrap_samples: resamples of evaluate's paired bootstrap over searches.
        min_gain_vs_baselines: the blessing margin over every baseline (NDCG@10 interval).
        min_gain_vs_champion: the blessing margin over the champion (0: significantly better).
        min_retrieval_gain: the retriever is blessed when the routed fusion's Recall@100 is at
            least (1 + this) × BM25's.
        min_intent_gain: routing by intent is blessed when the intent model's accuracy beats
            the majority class's by more than this.
        p99_budget_ms: the latency the packaged Bento must meet in infra validation.
        experiment_min_effect: the smallest relative change of streams per search the
            experiment's A/B test must be able to detect; it refuses to run on fewer listeners.
        gpu_type, gpu_node_selector, gpu_toleration: how a train step that trains on GPUs in
            its own pod (``use_gpu`` without ``ray_address``) asks for them on the cluster.
        work_claim: the ReadWriteMany claim that the train steps mount at ``/mnt/work``, as the
            Ray pods do (``infra/k8s/base/work.yaml``): with ``ray_address``, set ``work_dir``
            under it, e.g. ``/mnt/work/run-42``.
        """
        entities = dsl.importer(artifact_uri=entities_uri, artifact_class=Dataset)
        catalogue = dsl.importer(artifact_uri=catalogue_uri, artifact_class=Dataset)
        searches = dsl.importer(artifact_uri=searches_uri, artifact_class=Dataset)
        materialize = materialize_features_op(feature_repo=feature_repo, end=materialize_until)
        fetched = fetch_features_op(
            entities=entities.output, feature_repo=feature_repo, feature_service=feature_service
        )
        contract = fetched.outputs["feature_contract"]
        validated = validate_data_op(
            training_set=fetched.outputs["training_set"],
            feature_contract=contract,
            reference=reference_training_set,
            window_start=window_start,
            window_end=window_end,
            min_positive_share=min_positive_share,
            max_null_rate=max_null_rate,
        )
        parts = split_dataset_op(training_set=fetched.outputs["training_set"]).after(validated)
        intent = train_intent_op(
            train=parts.outputs["train"],
            valid=parts.outputs["valid"],
            test=parts.outputs["test"],
            searches=searches.output,
            catalogue=catalogue.output,
        )
        train_split = intent.outputs["train_with_intent"]
        valid_split = intent.outputs["valid_with_intent"]
        test_split = intent.outputs["test_with_intent"]
        lightgbm = train_lightgbm_op(
            train=train_split,
            valid=valid_split,
            feature_contract=contract,
            folds=lightgbm_folds,
            num_leaves=lightgbm_num_leaves,
            min_data_in_leaf=lightgbm_min_data_in_leaf,
            feature_fraction=lightgbm_feature_fraction,
        )
        scaling = {
            "num_workers": num_workers,
            "cpus_per_worker": cpus_per_worker,
            "use_gpu": use_gpu,
            "gpus_per_worker": gpus_per_worker,
        }
        placement = plan_training_op(
            ray_address=ray_address,
            memory=train_memory,
            gpu_node_selector=gpu_node_selector,
            gpu_toleration=gpu_toleration,
            **scaling,
        )
        ranker = train_ranker_op(
            train=train_split,
            valid=valid_split,
            feature_contract=contract,
            epochs=epochs,
            d_model=d_model,
            ray_address=ray_address,
            work_dir=work_dir,
            **scaling,
        )
        retriever = train_retriever_op(
            train=parts.outputs["train"],
            valid=parts.outputs["valid"],
            catalogue=catalogue.output,
            epochs=retriever_epochs,
            refit=retriever_refit,
            catch_up_epochs=retriever_catch_up_epochs,
            ray_address=ray_address,
            work_dir=work_dir,
            **scaling,
        )
        index = build_index_op(embeddings=retriever.outputs["embeddings"])
        generative = train_generative_retriever_op(
            train=parts.outputs["train"],
            valid=parts.outputs["valid"],
            catalogue=catalogue.output,
            embeddings=retriever.outputs["embeddings"],
            epochs=generative_epochs,
            ray_address=ray_address,
            work_dir=work_dir,
            **scaling,
        )
        retrieval = evaluate_retrieval_op(
            train=parts.outputs["train"],
            valid=parts.outputs["valid"],
            test=parts.outputs["test"],
            catalogue=catalogue.output,
            searches=searches.output,
            retriever=retriever.outputs["model"],
            index=index.outputs["index"],
            intent=intent.outputs["model"],
            generative=generative.outputs["model"],
            min_retrieval_gain=min_retrieval_gain,
            min_intent_gain=min_intent_gain,
        )
        verdict = evaluate_op(
            test=test_split,
            candidate=ranker.outputs["model"],
            lightgbm=lightgbm.outputs["model"],
            champion=champion,
            train=train_split,
            searches=searches.output,
            min_gain_vs_baselines=min_gain_vs_baselines,
            min_gain_vs_champion=min_gain_vs_champion,
            bootstrap_samples=bootstrap_samples,
        )
        report_inputs = {
            "validation_summary": validated.outputs["summary"],
            "curves": ranker.outputs["curves"],
            "evaluation": verdict.outputs["evaluation"],
            "evaluation_report": verdict.outputs["report"],
            "model": ranker.outputs["model"],
            "feature_service": feature_service,
            "run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            "training_data": entities_uri,
            "reference_training_set": reference_training_set,
            "retrieval_report": retrieval.outputs["report"],
            "intent_summary": intent.outputs["summary"],
        }
        with dsl.If(verdict.outputs["Output"] == True, name="blessed"):  # noqa: E712
            package = package_service_op(
                model=ranker.outputs["model"],
                golden=verdict.outputs["scores"],
                catalogue=catalogue.output,
                feature_repo=feature_repo,
                blessed=verdict.outputs["Output"],
                train=train_split,
                retriever=retriever.outputs["model"],
                index=index.outputs["index"],
                intent=intent.outputs["model"],
                routing=retrieval.outputs["routing"],
                generative=generative.outputs["model"],
                retriever_blessed=retrieval.outputs["retriever_blessed"],
                intent_blessed=retrieval.outputs["intent_blessed"],
                generative_blessed=retrieval.outputs["generative_blessed"],
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                p99_budget_ms=p99_budget_ms,
            ).after(materialize)
            packaged = {
                "serving_summary": package.outputs["summary"],
                "bento": package.outputs["bento"],
            }
            with dsl.If(ground_truth_uri != "", name="experiment"):
                truth = dsl.importer(artifact_uri=ground_truth_uri, artifact_class=Dataset)
                experiment = experiment_op(
                    test=test_split,
                    pre_period=train_split,
                    ground_truth=truth.output,
                    champion=lightgbm.outputs["model"],
                    challenger=ranker.outputs["model"],
                    champion_reference=champion,
                    champion_name="LightGBM",
                    challenger_name="candidate",
                    minimum_detectable_effect=experiment_min_effect,
                ).after(package)
                experiment_report = run_report_op(
                    **report_inputs, **packaged, experiment_report=experiment.outputs["report"]
                )
            with dsl.Else(name="no-experiment"):
                blessed_report = run_report_op(**report_inputs, **packaged)
        with dsl.Else(name="not-blessed"):
            unblessed_report = run_report_op(**report_inputs)
        # The online store, the Bento and the run's report must always be fresh; the rest may
        # be cached (a rerun after a failed step reuses what finished).
        reports = (blessed_report, experiment_report, unblessed_report)
        for always in (package, materialize, *reports):
            always.set_caching_options(False)
        if cluster:
            from searchrank.pipelines import placement as pods

            for trainer in (ranker, retriever, generative):
                pods.place_trainer(trainer, placement, gpu_type, work_claim)
            for task in (materialize, fetched, package):
                pods.open_feast(task)
            # The champion and the reference training set may live on object storage.
            pods.read_object_storage(verdict)
            pods.read_object_storage(validated)
            pods.read_object_storage(experiment)
            sizes = {
                pods.LIGHT: (placement, *reports),
                pods.FEATURES: (materialize, fetched, validated),
                pods.MODELLING: (parts, intent, lightgbm, index, retrieval, verdict, experiment),
                pods.PACKAGING: (package,),
            }
            for pod, tasks in sizes.items():
                for task in tasks:
                    pods.size(task, pod)

    return search_ranking


search_ranking_pipeline = build_pipeline(cluster=True)
"""The pipeline as Kubeflow runs it (``searchrank compile``)."""
local_search_ranking_pipeline = build_pipeline(cluster=False)
"""The same graph for ``kfp.local``, without Kubernetes placement."""
