"""Small matplotlib charts for run reports, as self-contained PNG data URIs (no files to ship)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display on a pipeline pod or a CI machine
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def data_uri(figure: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI; the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def training_curves(
    history: Sequence[Mapping[str, float]],
    best_epoch: int,
    validation: Mapping[str, str] | None = None,
) -> str:
    """Training loss and validation metrics by epoch, the selected epoch marked.

    Args:
        history: one record per epoch with ``epoch``, ``train_loss`` and the validation keys.
        best_epoch: the epoch whose checkpoint was kept.
        validation: history key -> legend label of each validation curve (the ranker's
            NDCG@10 and NDCG@5 when not given).
    """
    curves = validation or {"val_ndcg@10": "NDCG@10", "val_ndcg@5": "NDCG@5"}
    epochs = [h["epoch"] for h in history]
    figure, (loss_axis, score_axis) = plt.subplots(1, 2, figsize=(9, 3.2))
    loss_axis.plot(epochs, [h["train_loss"] for h in history], marker="o")
    loss_axis.set(title="training loss", xlabel="epoch")
    for key, label in curves.items():
        score_axis.plot(epochs, [h[key] for h in history], marker="o", label=label)
    score_axis.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
    score_axis.set(title="validation", xlabel="epoch")
    score_axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return data_uri(figure)


def grouped_bars(
    values: Mapping[str, Mapping[str, float]],
    errors: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
    title: str = "",
    ylabel: str = "",
) -> str:
    """Bars per group (x) and system (colour), with optional (low, high) error bars."""
    groups = list(next(iter(values.values())).keys()) if values else []
    systems = list(values)
    width = 0.8 / max(len(systems), 1)
    figure, axis = plt.subplots(
        figsize=(max(6.0, 0.9 * len(groups) * max(len(systems), 1) * 0.5 + 3), 3.6)
    )
    for k, system in enumerate(systems):
        xs = [g + k * width for g in range(len(groups))]
        heights = [values[system].get(group, float("nan")) for group in groups]
        yerr = None
        if errors and system in errors:
            low = [
                h - errors[system].get(g, (h, h))[0] for g, h in zip(groups, heights, strict=True)
            ]
            high = [
                errors[system].get(g, (h, h))[1] - h for g, h in zip(groups, heights, strict=True)
            ]
            yerr = [low, high]
        axis.bar(xs, heights, width=width, label=system, yerr=yerr, capsize=2)
    axis.set_xticks(
        [g + width * (len(systems) - 1) / 2 for g in range(len(groups))],
        groups,
        rotation=30,
        ha="right",
        fontsize=8,
    )
    axis.set(title=title, ylabel=ylabel)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return data_uri(figure)


@dataclass(frozen=True)
class Marker:
    """A labelled vertical line on a histogram."""

    x: float
    label: str
    color: str
    linestyle: str


def margin_markers(margin: float, lower: float) -> list[Marker]:
    """What a bootstrap histogram of (candidate − other) marks: the blessing margin that the
    interval's lower end had to exceed, 0 as a lighter reference when the margin is not 0
    (a negative margin accepts a tie), and the interval's lower end itself.

    Args:
        margin: the margin used for this comparison (``min_gain_vs_baselines`` or
            ``min_gain_vs_champion``).
        lower: the lower end of the bootstrap interval of the difference.
    """
    markers = [Marker(margin, f"margin {_signed(margin)}", "#c8453a", "--")]
    if margin != 0.0:
        markers.append(Marker(0.0, "0", "#b0b0b0", ":"))
    markers.append(Marker(lower, f"interval's lower end {_signed(lower)}", "#2d2d2d", "-"))
    return markers


def histogram(
    samples: Sequence[float], *, margin: float, lower: float, title: str = "", xlabel: str = ""
) -> str:
    """A bootstrap distribution of a difference with :func:`margin_markers` drawn and named
    in a legend: whether the lower end clears the margin is the blessing, at a glance."""
    figure, axis = plt.subplots(figsize=(5, 3))
    axis.hist(samples, bins=40, color="#4c72b0")
    for marker in margin_markers(margin, lower):
        axis.axvline(marker.x, color=marker.color, linestyle=marker.linestyle, label=marker.label)
    axis.set(title=title, xlabel=xlabel)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return data_uri(figure)


def _signed(value: float) -> str:
    """``value`` with four decimals and a typographic minus (``−0.0100``), as a label reads."""
    return f"{value:.4f}".replace("-", "\u2212")


def forest(
    rows: Sequence[tuple[str, float, float, float]],
    *,
    bounds: Mapping[str, float] | None = None,
    title: str = "",
    xlabel: str = "",
) -> str:
    """Estimates with their intervals, one row each, beside a line at 0: effects at a glance.

    Args:
        rows: (label, estimate, low, high) per row, drawn top to bottom.
        bounds: label -> a margin drawn as a red tick on that row (a guardrail's limit).
    """
    figure, axis = plt.subplots(figsize=(6.5, 0.6 * len(rows) + 1.2))
    for y, (label, estimate, low, high) in enumerate(reversed(rows)):
        axis.errorbar(
            estimate,
            y,
            xerr=[[estimate - low], [high - estimate]],
            fmt="o",
            capsize=4,
            color="#4c72b0",
        )
        if bounds and label in bounds:
            axis.plot(bounds[label], y, marker="|", markersize=18, color="#c8453a")
    axis.axvline(0.0, color="#b0b0b0", linestyle=":")
    axis.set_yticks(range(len(rows)), [label for label, *_ in reversed(rows)], fontsize=8)
    axis.set(title=title, xlabel=xlabel)
    figure.tight_layout()
    return data_uri(figure)


def overlaid_histograms(
    samples: Mapping[str, Sequence[float]], *, title: str = "", xlabel: str = ""
) -> str:
    """Distributions of several systems' values on shared bins (latencies of two arms)."""
    figure, axis = plt.subplots(figsize=(5.5, 3))
    every = [v for values in samples.values() for v in values]
    bins = 40 if every else 1
    for name, values in samples.items():
        axis.hist(
            values,
            bins=bins,
            range=(min(every), max(every)) if every else None,
            alpha=0.55,
            label=name,
        )
    axis.set(title=title, xlabel=xlabel)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return data_uri(figure)
