"""The report's figures: matplotlib plots, and Optuna's on the rebuilt study, each
saved as a PNG in the report folder and described by a :class:`Section`."""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.report.data import ReportData
from harness.report.diagnosis import diagnose

#: The files a report writes besides index.html (an earlier report's are replaced).
PLOT_FILES = ("history.png", "importances.png", "parallel_coordinates.png", "slice_*.png",
              "curves_trial_*.png")


@dataclass
class Section:
    """One part of the report: a heading, images (file names) and sentences."""

    title: str
    anchor: str
    images: list[tuple[str, str]] = field(default_factory=list)  # (file, caption)
    notes: list[str] = field(default_factory=list)
    html: str = ""


def _save(fig, out_dir: Path, name: str) -> str:
    # matplotlib: loaded when a report is drawn, never by `harness --help`
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=100)
    plt.close(fig)
    return name


def _figure(ax_or_axes):
    """The figure of an Optuna plot, recolored: its Blues map draws the lowest values white."""
    fig = np.atleast_1d(ax_or_axes).flat[0].figure
    for ax in fig.axes:
        for collection in ax.collections:
            if collection.get_array() is not None:
                collection.set_cmap("viridis")
    return fig


def history_section(data: ReportData, out_dir: Path) -> Section:
    """Objective per trial number, best-so-far line, pruned trials greyed."""
    # matplotlib: loaded when a report is drawn, never by `harness --help`
    import matplotlib.pyplot as plt

    section = Section("Optimization history", "history")
    table, metric = data.table, data.metric
    if metric is None or metric not in table.columns or data.complete.empty:
        section.notes.append("no completed trial: nothing to plot yet")
        return section
    ordered = table.sort_values("number")
    done = ordered[(ordered["state"] == "complete") & ordered[metric].notna()]
    pruned = ordered[(ordered["state"] == "pruned") & ordered[metric].notna()]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter(done["number"], done[metric], color="#1f77b4", label="completed", zorder=3)
    if not pruned.empty:
        ax.scatter(pruned["number"], pruned[metric], color="#999999", marker="x",
                   label="pruned (last reported value)", zorder=2)
    best = done[metric].cummax() if data.direction == "maximize" else done[metric].cummin()
    ax.step(done["number"], best, where="post", color="#d62728", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per trial ({data.direction})")
    ax.legend(loc="best")
    section.images.append((_save(fig, out_dir, "history.png"), f"{metric} of every trial"))
    failed = int((table["state"] == "failed").sum())
    if failed:
        section.notes.append(f"{failed} failed trial(s) are not plotted; see the table below")
    return section


def importance_section(data: ReportData, study, out_dir: Path) -> Section:
    """fANOVA importances (Optuna's evaluator) of the parameters every completed trial has."""
    # matplotlib and optuna: loaded when a report is drawn, never by `harness --help`
    import matplotlib.pyplot as plt
    import optuna  # lazy: optuna, kept out of harness --help

    section = Section("Parameter importances", "importances")
    if len(data.complete) < 2 or not data.searched:
        why = (
            "no searched parameter" if not data.searched
            else f"only {len(data.complete)} completed trial(s)"
        )
        section.notes.append(
            f"importances need at least 2 completed trials and 1 searched parameter: {why}"
        )
        return section
    common = [
        name for name in data.searched
        if all(name in t.params for t in study.get_trials(states=(_complete(),)))
    ]
    left_out = [name for name in data.searched if name not in common]
    if not common:
        section.notes.append("no searched parameter is set in every completed trial")
        return section
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        importances = optuna.importance.get_param_importances(
            study, evaluator=evaluator, params=common
        )
    except Exception as exc:  # noqa: BLE001 - e.g. every trial scored the same
        section.notes.append(f"importances could not be computed: {type(exc).__name__}: {exc}")
        return section
    if not importances or not all(math.isfinite(v) for v in importances.values()):
        section.notes.append(
            "importances are undefined (every completed trial has the same objective value)"
        )
        return section
    names = list(importances)[::-1]
    values = [importances[n] for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
    ax.barh(names, values, color="#1f77b4")
    for y, value in enumerate(values):
        ax.text(value, y, f" {value:.2f}", va="center")
    ax.set_xlabel(f"share of the variance of {data.metric} (fANOVA)")
    ax.set_xlim(0, max(values) * 1.2 or 1)
    ax.set_title("Hyperparameter importances")
    section.images.append((_save(fig, out_dir, "importances.png"), "fANOVA importances"))
    ranked = ", ".join(f"{n} {v:.2f}" for n, v in importances.items())
    section.notes.append(
        f"from {len(data.complete)} completed trials: {ranked}. With few trials these are rough"
    )
    if left_out:
        section.notes.append(
            f"left out (not set in every completed trial): {', '.join(left_out)}"
        )
    return section


def _complete():
    # optuna: loaded when a report is drawn, never by `harness --help`
    from optuna.trial import TrialState

    return TrialState.COMPLETE


def parallel_section(data: ReportData, study, out_dir: Path) -> Section:
    """Optuna's parallel-coordinates plot: one line per completed trial."""
    # optuna: loaded when a report is drawn, never by `harness --help`
    from optuna.visualization import matplotlib as ovm

    section = Section("Parallel coordinates", "parallel")
    if data.complete.empty or not data.searched:
        section.notes.append("needs a completed trial and a searched parameter")
        return section
    try:
        ax = ovm.plot_parallel_coordinate(study, params=data.searched, target_name=data.metric)
    except Exception as exc:  # noqa: BLE001
        section.notes.append(f"could not draw: {type(exc).__name__}: {exc}")
        return section
    fig = _figure(ax)
    fig.set_size_inches(max(8, 1.6 * (len(data.searched) + 1)), 5)
    section.images.append((
        _save(fig, out_dir, "parallel_coordinates.png"),
        f"each line is a completed trial, colored by {data.metric}",
    ))
    return section


def slice_section(data: ReportData, study, out_dir: Path) -> Section:
    """One slice plot per searched parameter: its value against the objective."""
    # optuna: loaded when a report is drawn, never by `harness --help`
    from optuna.visualization import matplotlib as ovm

    section = Section("Each parameter against the objective", "slices")
    if data.complete.empty or not data.searched:
        section.notes.append("needs a completed trial and a searched parameter")
        return section
    sampled = {name for t in study.get_trials(states=(_complete(),)) for name in t.params}
    for index, name in enumerate(data.searched):
        if name not in sampled:
            section.notes.append(f"{name}: not set in any completed trial")
            continue
        try:
            ax = ovm.plot_slice(study, params=[name], target_name=data.metric)
        except Exception as exc:  # noqa: BLE001
            section.notes.append(f"{name}: could not draw: {type(exc).__name__}: {exc}")
            continue
        fig = _figure(ax)
        fig.set_size_inches(6, 4.5)
        file = _save(fig, out_dir, f"slice_{index:02d}_{_slug(name)}.png")
        section.images.append((file, f"{name} against {data.metric}"))
    return section


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def curves_section(data: ReportData, out_dir: Path, top: int) -> Section:
    """Train vs validation curves of the best ``top`` trials, with the overfitting gap."""
    # matplotlib: loaded when a report is drawn, never by `harness --help`
    import matplotlib.pyplot as plt

    section = Section(f"Learning curves of the best {top} trials", "curves")
    best = data.complete.head(top)
    if best.empty:
        section.notes.append("no completed trial: no learning curves")
        return section
    for _, row in best.iterrows():
        number = int(row["number"])
        history = data.histories.get(number, {})
        diagnosis = diagnose(history)
        label = f"trial {number} ({data.metric}={float(row[data.metric]):.4f})"
        pairs = _curve_pairs(history)
        if not pairs:
            section.notes.append(f"<b>{html.escape(label)}</b>: {html.escape(diagnosis.text)}")
            continue
        fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 4), squeeze=False)
        for ax, key in zip(axes[0], pairs, strict=True):
            epochs = range(1, len(history[key]) + 1)
            ax.plot(epochs, history[key], marker="o", label=f"training {key}")
            if f"val_{key}" in history:
                val = history[f"val_{key}"]
                ax.plot(range(1, len(val) + 1), val, marker="o", label=f"validation {key}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(key)
            ax.set_title(f"trial {number}: {key}")
            ax.legend(loc="best")
        file = _save(fig, out_dir, f"curves_trial_{number:04d}.png")
        section.images.append((file, f"{label}: {diagnosis.text}"))
        section.notes.append(f"<b>{html.escape(label)}</b>: {html.escape(diagnosis.text)}")
    return section


def _curve_pairs(history: dict[str, list[float]]) -> list[str]:
    """Metrics with a training curve, loss first, at most three panels."""
    keys = [k for k in history if not k.startswith("val_") and history[k] and k != "learning_rate"]
    keys.sort(key=lambda k: (k != "loss", f"val_{k}" not in history, k))
    return keys[:3]
