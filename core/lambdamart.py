"""The LightGBM LambdaMART baseline, tuned by grouped cross-validation and never left at defaults.

:func:`tune_lambdamart` searches a small grid of tree and regularization parameters. Each grid
point is scored by K-fold cross-validation over whole queries (scikit-learn ``GroupKFold``): every
fold trains with early stopping on its held-out queries, and the point with the best mean
NDCG@k wins. The final model is then refit on all training rows for a number of rounds derived
from the folds' early-stopping points, so no data is held back from it.

Datasets are flat arrays: ``X`` (n, F) floats with NaN for missing values, ``y`` (n,) graded
integer labels >= 0 and ``groups`` (n,) query ids whose rows are contiguous. Every NDCG here
(early stopping, the CV table, the validation score) is :func:`~searchrank.core.metrics.ndcg_at_k`
with exponential gains ``2**label - 1``: a query without any relevant row is left out, as in
every figure searchrank reports. LightGBM's built-in ``ndcg`` metric would count it as 1, which
lifts the score by the share of such queries, so training evaluates ours instead (``feval``).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import pandas as pd

from searchrank.core.errors import InputError
from searchrank.core.features import PROCESSOR_FILE, FeatureProcessor
from searchrank.core.metrics import ndcg_at_k
from searchrank.core.schema import search_bounds

if TYPE_CHECKING:
    import lightgbm as lgb

_log = logging.getLogger(__name__)

MODEL_FILE = "model.txt"
"""The LightGBM text model inside a saved folder."""
META_FILE = "lambdamart.json"
"""Chosen parameters, CV results and feature names inside a saved folder."""

MAX_LABEL = 30
"""Largest accepted grade: exponential gains past ``2**30`` swamp every other grade (and this is
LightGBM's own default gain table's limit). Map finer scales onto fewer grades first."""

_FORBIDDEN_NAME_CHARS = frozenset('[]{},:"')
"""LightGBM stores feature names in JSON-like model text and rejects these characters."""

_DATASET_PARAMS: dict[str, Any] = {"feature_pre_filter": False, "verbosity": -1}
"""Parameters fixed at Dataset construction. Pre-filtering would bake the first grid point's
``min_data_in_leaf`` into the binned data; turning it off lets every grid point reuse one
constructed Dataset per fold."""


@dataclass(frozen=True)
class GridPoint:
    """One combination of the searched LightGBM parameters."""

    num_leaves: int
    learning_rate: float
    min_data_in_leaf: int
    feature_fraction: float
    lambda_l2: float


@dataclass(frozen=True)
class LambdaMartConfig:
    """The search grid (the Cartesian product of the tuples) and the cross-validation setup.

    The default grid has 12 points: it searches tree capacity (``num_leaves`` x
    ``min_data_in_leaf``) and column subsampling, the parameters that move LambdaMART's NDCG
    most. The learning rate stays at 0.1 because early stopping already picks the number of
    rounds, and a lower rate mostly buys more rounds (on a 400,000-row synthetic set, 0.05
    gained 0.0005 NDCG@10 for 1.5 times the rounds). A small L2 penalty keeps leaf values
    moderate where lambdarank's hessians are tiny (leaves of near-tied documents). Widen any
    tuple to search it; the cost grows with the product (see :func:`tune_lambdamart`).

    Attributes:
        num_leaves: candidate maximum leaves per tree (2 .. 131072).
        learning_rate: candidate shrinkage rates, in (0, 1].
        min_data_in_leaf: candidate minimum rows per leaf (>= 1).
        feature_fraction: candidate fractions of features drawn per tree, in (0, 1].
        lambda_l2: candidate L2 penalties on leaf values (>= 0).
        folds: number of grouped cross-validation folds (>= 2; at most the number of queries).
        max_rounds: upper bound on boosting rounds of each cross-validation fit.
        early_stopping_rounds: rounds without a held-out NDCG gain before a fold stops.
        eval_at: the k of NDCG@k, for early stopping, selection and the validation report.
        seed: seed of LightGBM's feature subsampling; results repeat exactly for a given seed and
            thread count.
        num_threads: LightGBM threads; 0 uses OpenMP's default (all cores). Threads beyond the
            free cores are ruinous on small sets: LightGBM meets an OpenMP barrier many times per
            round, and threads spin there. With another busy process on two cores, the example
            set's tuning took 430 s with 2 threads and 9 s with 1 (same results), so use 1 for
            small sets on shared machines.
        position_bias_regularization: None trains on the clicks as they are; a number >= 0
            turns on LightGBM's unbiased lambdarank (4.1+): it learns a position-bias factor
            per logged position beside the trees, from each row's logged position, and the
            trees rank without it. The number regularizes those factors (LightGBM's
            ``lambdarank_position_bias_regularization``; 0 is its default).
    """

    num_leaves: tuple[int, ...] = (15, 31, 63)
    learning_rate: tuple[float, ...] = (0.1,)
    min_data_in_leaf: tuple[int, ...] = (20, 100)
    feature_fraction: tuple[float, ...] = (0.7, 1.0)
    lambda_l2: tuple[float, ...] = (1.0,)
    folds: int = 3
    max_rounds: int = 2000
    early_stopping_rounds: int = 50
    eval_at: int = 10
    seed: int = 0
    num_threads: int = 0
    position_bias_regularization: float | None = None

    def __post_init__(self) -> None:
        _check_ints("num_leaves", self.num_leaves, low=2, high=131_072)
        _check_ints("min_data_in_leaf", self.min_data_in_leaf, low=1)
        _check_fractions("learning_rate", self.learning_rate)
        _check_fractions("feature_fraction", self.feature_fraction)
        if not self.lambda_l2 or not all(
            _is_real(v) and math.isfinite(v) and v >= 0 for v in self.lambda_l2
        ):
            raise InputError(
                "lambda_l2", self.lambda_l2, "a non-empty tuple of finite numbers >= 0"
            )
        _check_int("folds", self.folds, low=2)
        _check_int("max_rounds", self.max_rounds, low=1)
        _check_int("early_stopping_rounds", self.early_stopping_rounds, low=1)
        _check_int("eval_at", self.eval_at, low=1)
        _check_int("seed", self.seed, low=0)
        _check_int("num_threads", self.num_threads, low=0)
        bias = self.position_bias_regularization
        if bias is not None and not (_is_real(bias) and math.isfinite(bias) and bias >= 0):
            raise InputError(
                "position_bias_regularization", bias, "must be None (off) or a number >= 0"
            )

    def grid(self) -> list[GridPoint]:
        """The grid points in a fixed order (ties in CV NDCG go to the earlier point)."""
        return [
            GridPoint(*values)
            for values in itertools.product(
                self.num_leaves,
                self.learning_rate,
                self.min_data_in_leaf,
                self.feature_fraction,
                self.lambda_l2,
            )
        ]


@dataclass(frozen=True)
class CvResult:
    """Cross-validation of one grid point (one row of the CV results table)."""

    point: GridPoint
    ndcg_mean: float
    """Mean over folds of each fold's NDCG@k at its early-stopping round."""
    ndcg_std: float
    """Population standard deviation of the fold NDCGs."""
    best_iteration_mean: float
    fold_best_iterations: tuple[int, ...]


@dataclass(frozen=True)
class TunedLambdaMart:
    """A LambdaMART model refit on all training data with the parameters CV chose.

    Attributes:
        booster: the refit LightGBM model.
        params: the full LightGBM parameters of the refit (a private copy; do not mutate).
        num_rounds: boosting rounds of the refit.
        cv_results: one row per grid point, in grid order.
        feature_names: the model's input columns, in order.
        categorical: indices of the columns treated as categorical.
        valid_ndcg: NDCG@k of the optional validation set, reported only; ``None`` without one.
    """

    booster: lgb.Booster
    params: dict[str, Any]
    num_rounds: int
    cv_results: tuple[CvResult, ...]
    feature_names: tuple[str, ...]
    categorical: tuple[int, ...]
    valid_ndcg: float | None = None

    @property
    def chosen(self) -> CvResult:
        """The CV row of the chosen grid point (the first with the best mean NDCG)."""
        return max(self.cv_results, key=lambda r: r.ndcg_mean)

    def predict(self, X: np.ndarray) -> np.ndarray:  # noqa: N803 (the scikit-learn convention)
        """Score rows; only the order within a query is meaningful.

        Args:
            X: (n, F) features in the order of :attr:`feature_names`, NaN for missing.

        Returns:
            (n,) float64 scores.
        """
        matrix = _check_matrix(X, "X")
        if matrix.shape[1] != len(self.feature_names):
            raise InputError("X", matrix.shape, f"needs {len(self.feature_names)} feature columns")
        return np.asarray(self.booster.predict(matrix), dtype=np.float64)

    def importance(self) -> dict[str, float]:
        """Total split gain of each feature over all trees, by feature name."""
        gains = self.booster.feature_importance(importance_type="gain")
        return {name: float(g) for name, g in zip(self.feature_names, gains, strict=True)}

    def save(self, folder: Path) -> None:
        """Write ``model.txt`` (LightGBM's text format) and ``lambdamart.json`` into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / MODEL_FILE))
        meta = {
            "params": self.params,
            "num_rounds": self.num_rounds,
            "cv_results": [asdict(r) for r in self.cv_results],
            "feature_names": list(self.feature_names),
            "categorical": list(self.categorical),
            "valid_ndcg": self.valid_ndcg,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> TunedLambdaMart:
        """Read a model written by :meth:`save`."""
        import lightgbm as lgb

        for name in (MODEL_FILE, META_FILE):
            if not (folder / name).is_file():
                raise InputError("folder", str(folder), f"a saved LambdaMART needs {name}")
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        rows = tuple(
            CvResult(
                point=GridPoint(**row["point"]),
                ndcg_mean=row["ndcg_mean"],
                ndcg_std=row["ndcg_std"],
                best_iteration_mean=row["best_iteration_mean"],
                fold_best_iterations=tuple(row["fold_best_iterations"]),
            )
            for row in meta["cv_results"]
        )
        return cls(
            booster=lgb.Booster(model_file=str(folder / MODEL_FILE)),
            params=meta["params"],
            num_rounds=meta["num_rounds"],
            cv_results=rows,
            feature_names=tuple(meta["feature_names"]),
            categorical=tuple(meta["categorical"]),
            valid_ndcg=meta["valid_ndcg"],
        )


def tune_lambdamart(
    X: np.ndarray,  # noqa: N803 (the scikit-learn convention)
    y: np.ndarray,
    groups: np.ndarray,
    *,
    categorical: Sequence[int] = (),
    feature_names: Sequence[str] | None = None,
    valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    config: LambdaMartConfig | None = None,
    positions: np.ndarray | None = None,
) -> TunedLambdaMart:
    """Choose LambdaMART parameters by grouped CV, then refit on all training rows.

    Selection uses cross-validation on the training data only. ``valid``, when given, is scored
    once with the final model for the report and never influences any choice; the test split
    must never be passed here at all, so that its NDCG stays an unbiased estimate.

    Each fold's NDCG is read at that fold's own early-stopping round, which flatters every grid
    point a little (the round is picked on the same held-out queries), settings with noisier
    curves somewhat more; with 3 or more folds of some hundred queries the effect is small next
    to the fold-to-fold spread reported as ``ndcg_std``.

    Cost: ``len(config.grid()) * config.folds`` early-stopped fits plus one refit, each round
    costing time in proportion to the rows. The default grid suits sets up to some 100,000 rows:
    the LightGBM example set (3,005 rows, 300 features) takes about 7 s on two free cores. On
    400,000 rows and 40 features a fit takes half a minute or more, so shrink the search there:
    ``num_leaves=(31, 127), min_data_in_leaf=(100,), feature_fraction=(0.7,), folds=2`` took
    3.2 minutes on one core.

    Args:
        X: (n, F) float features, NaN for missing; categorical columns hold integer codes >= 0.
        y: (n,) integer grades in 0 .. 30.
        groups: (n,) query ids; the rows of each query are contiguous.
        categorical: indices of the columns LightGBM should split on as categories.
        feature_names: F names; ``feature_<i>`` when ``None``.
        valid: an optional (X, y, groups) validation set, reported as ``valid_ndcg``.
        config: the grid and CV setup; the default :class:`LambdaMartConfig` when ``None``.
        positions: (n,) each row's logged position (0 = top), which position-bias correction
            learns from; required when ``config.position_bias_regularization`` is set.

    Returns:
        The refit model with its parameters and the CV results table.

    Raises:
        InputError: the arrays are misshapen or misaligned, labels are not integer grades, a
            query's rows are not contiguous, there are fewer queries than folds, or names or
            categorical indices are invalid.
    """
    import lightgbm as lgb
    from sklearn.model_selection import GroupKFold

    cfg = config if config is not None else LambdaMartConfig()
    matrix, labels, query_index = _check_dataset(X, y, groups, "")
    n_features = matrix.shape[1]
    names = _check_feature_names(feature_names, n_features)
    cats = _check_categorical(categorical, matrix)
    n_queries = int(query_index[-1]) + 1
    if n_queries < cfg.folds:
        raise InputError("groups", n_queries, f"needs at least folds={cfg.folds} queries")
    max_label = int(labels.max())
    valid_arrays = None
    if valid is not None:
        valid_arrays = _check_dataset(*valid, "valid ")
        if valid_arrays[0].shape[1] != n_features:
            raise InputError("valid X", valid_arrays[0].shape, f"needs {n_features} columns")
        _check_categorical(cats, valid_arrays[0], field="valid X")
        # Gains for grades only the validation set has; training never reads those entries.
        max_label = max(max_label, int(valid_arrays[1].max()))
    base = _base_params(cfg, max_label)
    logged = _check_positions(positions, cfg, len(labels))

    def dataset(rows: np.ndarray, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        # Only training sets carry positions: the bias factors are part of the objective,
        # never of the scores that held-out NDCG reads.
        return lgb.Dataset(
            matrix[rows],
            labels[rows],
            group=np.diff(search_bounds(query_index[rows], field="groups")),
            feature_name=list(names),
            categorical_feature=list(cats),
            reference=reference,
            params=_DATASET_PARAMS,
            position=logged[rows] if logged is not None and reference is None else None,
        ).construct()

    # Binned once per fold and shared by all grid points: binning is a sizeable part of a fit.
    splitter = GroupKFold(n_splits=cfg.folds)
    fold_sets = []
    for train_rows, held_rows in splitter.split(matrix, labels, query_index):
        train_set = dataset(train_rows)
        fold_sets.append((train_set, dataset(held_rows, reference=train_set)))

    metric = f"ndcg@{cfg.eval_at}"
    feval = _ndcg_feval(cfg.eval_at)
    results = []
    for point in cfg.grid():
        params = {**base, **asdict(point)}
        scores, iterations = [], []
        for train_set, held_set in fold_sets:
            booster = lgb.train(
                params,
                train_set,
                num_boost_round=cfg.max_rounds,
                valid_sets=[held_set],
                valid_names=["cv"],
                feval=feval,
                callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
            )
            scores.append(float(booster.best_score["cv"][metric]))
            iterations.append(int(booster.best_iteration))
        results.append(
            CvResult(
                point=point,
                ndcg_mean=float(np.mean(scores)),
                ndcg_std=float(np.std(scores)),
                best_iteration_mean=float(np.mean(iterations)),
                fold_best_iterations=tuple(iterations),
            )
        )
        _log.info(
            "LambdaMART CV %s: %s=%.4f, rounds %s", point, metric, results[-1].ndcg_mean, iterations
        )
    del fold_sets

    best = max(results, key=lambda r: r.ndcg_mean)
    # Each fold trained on (folds-1)/folds of the queries; with more data the optimum sits at
    # proportionally more rounds before trees start fitting noise, so scale up to the full set.
    num_rounds = max(1, round(best.best_iteration_mean * cfg.folds / (cfg.folds - 1)))
    params = {**base, **asdict(best.point)}
    all_rows = np.arange(len(labels))
    booster = lgb.train(params, dataset(all_rows), num_boost_round=num_rounds)
    valid_ndcg = None
    if valid_arrays is not None:
        v_matrix, v_labels, v_index = valid_arrays
        scores_v = np.asarray(booster.predict(v_matrix), dtype=np.float64)
        valid_ndcg = ndcg_at_k(v_labels, scores_v, v_index, cfg.eval_at, no_relevant="skip")
    return TunedLambdaMart(
        booster=booster,
        params=params,
        num_rounds=num_rounds,
        cv_results=tuple(results),
        feature_names=names,
        categorical=cats,
        valid_ndcg=valid_ndcg,
    )


def _base_params(cfg: LambdaMartConfig, max_label: int) -> dict[str, Any]:
    """LightGBM parameters shared by every fit; the grid point's values are added to them."""
    return {
        "objective": "lambdarank",
        # Early stopping reads our NDCG (_ndcg_feval), not LightGBM's built-in one.
        "metric": "None",
        "label_gain": [float(2**g - 1) for g in range(max_label + 1)],
        "deterministic": True,
        "force_row_wise": True,
        "seed": cfg.seed,
        "num_threads": cfg.num_threads,
        **_DATASET_PARAMS,
        **(
            {"lambdarank_position_bias_regularization": cfg.position_bias_regularization}
            if cfg.position_bias_regularization is not None
            else {}
        ),
    }


def _check_positions(
    positions: np.ndarray | None, cfg: LambdaMartConfig, rows: int
) -> np.ndarray | None:
    """The logged positions position-bias correction needs, or None when it is off."""
    if cfg.position_bias_regularization is None:
        return None
    if positions is None:
        raise InputError(
            "positions",
            None,
            "position_bias_regularization is set, so every training row needs its logged "
            "position (the position column of the training set)",
        )
    logged = np.asarray(positions)
    if logged.shape != (rows,) or not np.issubdtype(logged.dtype, np.integer) or (logged < 0).any():
        raise InputError(
            "positions", logged.shape, f"must be {rows} integer positions >= 0, one per row"
        )
    return logged.astype(np.int32)


def _ndcg_feval(k: int) -> Callable[[np.ndarray, lgb.Dataset], tuple[str, float, bool]]:
    """A LightGBM ``feval`` that reports :func:`ndcg_at_k` as ``ndcg@k`` (higher is better).

    LightGBM calls it after every round on each validation set with that set's predictions; the
    queries are rebuilt from the set's group sizes.
    """
    name = f"ndcg@{k}"

    def feval(predictions: np.ndarray, data: lgb.Dataset) -> tuple[str, float, bool]:
        sizes = np.asarray(data.get_group())
        queries = np.repeat(np.arange(len(sizes)), sizes)
        labels = np.asarray(data.get_label()).astype(np.int64)
        return name, ndcg_at_k(labels, predictions, queries, k, no_relevant="skip"), True

    return feval


def _check_dataset(
    features: np.ndarray, y: np.ndarray, groups: np.ndarray, prefix: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate one ranking dataset.

    Returns:
        The (n, F) float matrix, the (n,) int64 labels and (n,) query numbers 0 .. Q-1 in
        order of appearance.
    """
    matrix = _check_matrix(features, f"{prefix}X")
    labels = np.asarray(y)
    ids = np.asarray(groups)
    n = matrix.shape[0]
    if n == 0:
        raise InputError(f"{prefix}X", matrix.shape, "needs at least one row")
    if labels.shape != (n,) or ids.shape != (n,):
        raise InputError(
            f"{prefix}y, {prefix}groups",
            (labels.shape, ids.shape),
            f"must both have shape ({n},) to match X",
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{prefix}y", labels.dtype, "labels must be an integer array")
    if labels.min() < 0 or labels.max() > MAX_LABEL:
        raise InputError(
            f"{prefix}y",
            (int(labels.min()), int(labels.max())),
            f"labels must be graded 0 .. {MAX_LABEL}",
        )
    sizes = np.diff(search_bounds(ids, field=f"{prefix}groups"))
    return matrix, labels.astype(np.int64), np.repeat(np.arange(len(sizes)), sizes)


def _check_matrix(features: np.ndarray, field: str) -> np.ndarray:
    """A 2-D float view of ``features``; NaN is allowed (missing), infinities are not."""
    matrix = np.asarray(features)
    if matrix.ndim != 2:
        raise InputError(field, matrix.shape, "features must be a 2-D array (rows, features)")
    if matrix.dtype.kind in "iub":
        matrix = matrix.astype(np.float64)
    if matrix.dtype.kind != "f":
        raise InputError(field, matrix.dtype, "features must be numeric")
    if np.isinf(matrix).any():
        raise InputError(field, "inf", "features must be finite; use NaN for missing values")
    return matrix


def _check_feature_names(names: Sequence[str] | None, n_features: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"feature_{i}" for i in range(n_features))
    out = tuple(names)
    if len(out) != n_features:
        raise InputError("feature_names", len(out), f"needs one name per column ({n_features})")
    if len(set(out)) != len(out):
        raise InputError("feature_names", out, "names must be unique")
    bad = [n for n in out if not n or any(c.isspace() or c in _FORBIDDEN_NAME_CHARS for c in n)]
    if bad:
        raise InputError(
            "feature_names", bad[:5], 'names must be non-empty, without whitespace or []{},:"'
        )
    return out


def _check_categorical(
    categorical: Sequence[int], matrix: np.ndarray, field: str = "X"
) -> tuple[int, ...]:
    """Validate categorical column indices and that those columns hold codes >= 0 or NaN."""
    cats = tuple(categorical)
    n_features = matrix.shape[1]
    if any(not _is_int(c) or not 0 <= c < n_features for c in cats) or len(set(cats)) != len(cats):
        raise InputError("categorical", cats, f"distinct column indices in 0 .. {n_features - 1}")
    for c in cats:
        codes = matrix[:, c]
        codes = codes[~np.isnan(codes)]
        if codes.size and (codes.min() < 0 or np.any(codes != np.round(codes))):
            raise InputError(
                f"{field} column {c}", codes[:5].tolist(), "categorical codes must be integers >= 0"
            )
    return tuple(sorted(int(c) for c in cats))


def _is_int(value: object) -> TypeGuard[int | np.integer]:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _check_int(field: str, value: object, *, low: int) -> None:
    if not _is_int(value) or int(value) < low:
        raise InputError(field, value, f"an integer >= {low}")


def _check_ints(field: str, values: tuple[int, ...], *, low: int, high: int | None = None) -> None:
    ok = bool(values) and all(
        _is_int(v) and v >= low and (high is None or v <= high) for v in values
    )
    if not ok:
        upper = f" and <= {high}" if high is not None else ""
        raise InputError(field, values, f"a non-empty tuple of integers >= {low}{upper}")


def _check_fractions(field: str, values: tuple[float, ...]) -> None:
    if not values or not all(_is_real(v) and 0 < v <= 1 for v in values):
        raise InputError(field, values, "a non-empty tuple of numbers in (0, 1]")


def load_lightgbm(model_dir: Path) -> tuple[TunedLambdaMart, FeatureProcessor]:
    """A baseline saved by ``train_lightgbm``: the model and the feature processor it reads."""
    if not (model_dir / PROCESSOR_FILE).is_file():
        raise InputError(
            "lightgbm model", str(model_dir), f"must be a folder with {PROCESSOR_FILE}"
        )
    return TunedLambdaMart.load(model_dir), FeatureProcessor.load(model_dir / PROCESSOR_FILE)


def score_lightgbm(frame: pd.DataFrame, model_dir: Path) -> np.ndarray:
    """Scores of every row by the saved baseline, shape (n,)."""
    model, processor = load_lightgbm(model_dir)
    return model.predict(processor.raw_matrix(frame)[0])
