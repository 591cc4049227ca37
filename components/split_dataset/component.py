"""The ``split_dataset`` KFP component: a thin wrapper over ``core.split``."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def split_dataset_op(
    training_set: Input[Dataset],
    train: Output[Dataset],
    valid: Output[Dataset],
    test: Output[Dataset],
    valid_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> None:
    """Cut a training set by search time: the latest searches test, the ones before validate.

    Args:
        training_set: the validated training set (parquet).
        train: the earliest searches, to train on.
        valid: the searches just before the test ones, for early stopping and selection.
        test: the latest searches, for the evaluation only.
        valid_fraction: share of searches for validation.
        test_fraction: share of searches for the test.
    """
    from pathlib import Path

    import pandas as pd

    from searchrank.core import schema as S
    from searchrank.core.io import write_parquet_atomically
    from searchrank.core.split import split_by_time

    frame = pd.read_parquet(training_set.path)
    parts = split_by_time(frame, valid_fraction, test_fraction)
    for artifact, part in zip((train, valid, test), parts, strict=True):
        import pyarrow as pa

        write_parquet_atomically(
            pa.Table.from_pandas(part, preserve_index=False), Path(artifact.path)
        )
        artifact.metadata.update(
            {
                "rows": len(part),
                "searches": int(part[S.SEARCH_ID].nunique()),
                "event_time_min": str(part[S.EVENT_TIMESTAMP].min()) if len(part) else "",
                "event_time_max": str(part[S.EVENT_TIMESTAMP].max()) if len(part) else "",
            }
        )
