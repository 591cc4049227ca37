"""A step whose cluster configuration is incomplete fails at start-up, saying what to fix.

Each case runs the real component under kfp.local with Feast's cluster configuration or an
object-storage URI and a piece of its environment missing; the step's log must name the
variable or URI and the rule, and the step must fail before any work.

No ``from __future__ import annotations`` here: KFP reads the test pipelines' annotations.
"""

from collections.abc import Callable
from pathlib import Path

import pytest
from kfp import dsl
from kfp.dsl import Artifact, Dataset

from searchrank.components.fetch_features import fetch_features_op
from searchrank.components.validate_data import validate_data_op
from searchrank.core import names
from searchrank.features import tables as T
from searchrank.features.store import ENVIRONMENTS, FEATURE_STORE_YAML, REPO_TEMPLATE_DIR


@dsl.pipeline(name="fetch-on-the-cluster")
def _fetch(entities_uri: str, feature_repo: str) -> None:
    entities = dsl.importer(artifact_uri=entities_uri, artifact_class=Dataset)
    fetch_features_op(entities=entities.output, feature_repo=feature_repo, feature_service="x")


@dsl.pipeline(name="validate-against-a-reference")
def _validate(training_set_uri: str, contract_uri: str, reference: str) -> None:
    data = dsl.importer(artifact_uri=training_set_uri, artifact_class=Dataset)
    contract = dsl.importer(artifact_uri=contract_uri, artifact_class=Artifact)
    validate_data_op(
        training_set=data.output, feature_contract=contract.output, reference=reference
    )


def _failed_log(run: Callable[[], object], capfd: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(RuntimeError):
        run()
    captured = capfd.readouterr()
    return captured.out + captured.err


def test_a_feast_step_without_its_secret_names_the_variables_and_where_they_come_from(
    kfp_local: Path,
    dataset_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    repo = tmp_path / "etc-feast"
    repo.mkdir()
    (repo / FEATURE_STORE_YAML).write_text(
        (REPO_TEMPLATE_DIR / ENVIRONMENTS["cluster"]).read_text()
    )
    for variable in names.ONLINE_STORE_SECRET_ENV.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SEARCHRANK_FEATURE_DATA_URI", "s3://searchrank-features/data")
    log = _failed_log(
        lambda: _fetch(
            entities_uri=str(dataset_dir / T.file_name(T.IMPRESSIONS)), feature_repo=str(repo)
        ),
        capfd,
    )
    assert "InputError" in log
    for variable in names.ONLINE_STORE_SECRET_ENV.values():
        assert variable in log
    assert names.ONLINE_STORE_SECRET in log, "the message says which secret sets them"


def test_a_reference_on_object_storage_without_credentials_names_the_uri_and_the_variables(
    kfp_local: Path,
    splits: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    for variable in names.OBJECT_STORE_SECRET_ENV.values():
        monkeypatch.delenv(variable, raising=False)
    reference = "s3://searchrank-models/reference/training_set.parquet"
    log = _failed_log(
        lambda: _validate(
            training_set_uri=str(splits["full"]),
            contract_uri=str(splits["contract"]),
            reference=reference,
        ),
        capfd,
    )
    assert reference in log and "reference" in log
    for variable in names.OBJECT_STORE_SECRET_ENV.values():
        assert variable in log
