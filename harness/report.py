"""``harness report STUDY``: a static HTML report a person reads without running anything.

``runs/<study>/report/index.html`` with PNGs next to it: the optimization
history, parameter importances, a parallel-coordinates plot, each searched
parameter against the objective, and the learning curves of the best trials
with their overfitting gap called out.

Everything is built from backend-agnostic files: ``trials.csv``, ``study.json``
and ``histories.json`` (per-epoch Keras logs), so a study stored by Optuna or
by KerasTuner reports the same way. Optuna's plots and importance evaluator run
on an in-memory Optuna study rebuilt from the table.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import sys
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results import make_folder

log = logging.getLogger(__name__)

REPORT_DIR = "report"
#: How many of the best trials get learning curves.
TOP_TRIALS = 3
#: Rows of the summary table in the HTML (the whole table is in trials.csv).
TABLE_ROWS = 30
#: A validation loss this much (relative) above its minimum counts as rising.
RISE_TOLERANCE = 0.01
#: The files a report writes besides index.html (an earlier report's are replaced).
PLOT_FILES = ("history.png", "importances.png", "parallel_coordinates.png", "slice_*.png",
              "curves_trial_*.png")


def add_parser(subparsers, add_common) -> None:
    """``harness report STUDY [--top N] [--output DIR]``."""
    parser = subparsers.add_parser(
        "report",
        help="write an HTML report with plots (history, importances, curves)",
        description=(
            "Write runs/<study>/report/index.html with PNG plots next to it: optimization "
            "history, parameter importances, parallel coordinates, each searched parameter "
            "against the objective, and learning curves of the best trials with their "
            "overfitting gap."
        ),
    )
    parser.add_argument("target", help="study name (under --runs-dir) or run directory")
    parser.add_argument(
        "--top", type=int, default=TOP_TRIALS,
        help=f"learning curves of the N best trials (default {TOP_TRIALS})",
    )
    parser.add_argument("--output", type=Path, help="report folder (default: <run dir>/report)")
    add_common(parser)
    parser.set_defaults(handler=cmd_report)


def cmd_report(args) -> int:
    from harness.results import resolve_run_dir

    if args.top < 1:
        raise HarnessError(f"--top must be at least 1, got {args.top}")
    run_dir = resolve_run_dir(args.target, args.runs_dir)
    index = write_report(run_dir, args.output, top=args.top)
    print(f"report: {index}")
    return 0


# --------------------------------------------------------------------------- diagnosis


@dataclass
class Diagnosis:
    """What a trial's learning curves say: a verdict and a sentence for people."""

    verdict: str  # overfitting, still-improving, plateau, no-validation, no-history
    text: str
    gap: float | None = None


def diagnose(history: dict[str, list[float]]) -> Diagnosis:
    """Read train vs validation loss per epoch: overfitting, still improving or flat.

    Overfitting: validation loss reaches its minimum before the last epoch and
    rises after it while training loss keeps falling. The gap is validation
    minus training loss at the last epoch.
    """
    loss = [float(v) for v in history.get("loss", [])]
    val = [float(v) for v in history.get("val_loss", [])]
    if not loss:
        return Diagnosis("no-history", "no per-epoch history was recorded")
    epochs = len(loss)
    if not val:
        return Diagnosis(
            "no-validation",
            f"no validation curve; training loss {loss[0]:.4g} -> {loss[-1]:.4g} "
            f"over {epochs} epoch{'s' if epochs != 1 else ''}",
        )
    n = min(len(loss), len(val))
    loss, val = loss[:n], val[:n]
    gap = val[-1] - loss[-1]
    parts = []
    accuracy = _accuracy_gap(history)
    if n == 1:
        text = f"only 1 epoch, no trend to read; gap at the end {gap:.4g}"
        return Diagnosis("plateau", text + accuracy, gap)
    best = min(range(n), key=val.__getitem__)
    rises = val[-1] > val[best] + max(abs(val[best]) * RISE_TOLERANCE, 1e-4)
    if best < n - 1 and rises and loss[-1] < loss[best]:
        parts.append(
            f"validation loss rises from epoch {best + 1} (lowest {val[best]:.4g}, "
            f"{val[-1]:.4g} at epoch {n}) while training loss falls "
            f"({loss[best]:.4g} -> {loss[-1]:.4g}); gap at the end {gap:.4g}. "
            f"Overfitting: stop near epoch {best + 1}, or add dropout, regularization or "
            "augmentation"
        )
        verdict = "overfitting"
    elif best == n - 1:
        parts.append(
            f"validation loss still falls at the last epoch ({val[-2]:.4g} -> {val[-1]:.4g}); "
            f"gap at the end {gap:.4g}. No sign of overfitting yet: more epochs may help"
        )
        verdict = "still-improving"
    else:
        parts.append(
            f"validation loss is flat after epoch {best + 1} (lowest {val[best]:.4g}, "
            f"{val[-1]:.4g} at epoch {n}); gap at the end {gap:.4g}"
        )
        verdict = "plateau"
    if gap < 0:
        parts.append(
            "validation loss is below training loss (dropout and augmentation act only in "
            "training)"
        )
    return Diagnosis(verdict, "; ".join(parts) + accuracy, gap)


def _accuracy_gap(history: dict[str, list[float]]) -> str:
    train, val = history.get("accuracy"), history.get("val_accuracy")
    if not train or not val:
        return ""
    return (
        f". Accuracy at the end: training {train[-1]:.4f}, validation {val[-1]:.4f} "
        f"(gap {train[-1] - val[-1]:+.4f})"
    )


# --------------------------------------------------------------------------- data


@dataclass
class ReportData:
    """What the report is drawn from."""

    run_dir: Path
    meta: dict[str, Any]
    table: Any  # pandas DataFrame, best first
    histories: dict[int, dict[str, list[float]]]
    objectives: list[dict[str, str]]
    searched: list[str]
    notes: list[str] = field(default_factory=list)
    #: Why the per-epoch histories could not be read (None: read, or none recorded).
    histories_error: str | None = None

    @property
    def metric(self) -> str | None:
        return self.objectives[0]["metric"] if self.objectives else None

    @property
    def direction(self) -> str:
        return self.objectives[0]["direction"] if self.objectives else "maximize"

    @property
    def complete(self):
        table = self.table
        if table.empty or self.metric not in table.columns:
            return table.iloc[0:0]
        done = table[(table["state"] == "complete") & table[self.metric].notna()]
        return done


def load_report_data(run_dir: Path) -> ReportData:
    """Read ``trials.csv``, ``study.json`` and the per-trial histories of ``run_dir``."""
    from harness.results import read_histories, read_meta, read_table

    meta = read_meta(run_dir)
    table = read_table(run_dir)
    objectives = meta.get("objectives") or []
    if not objectives and "value" in table.columns:
        objectives = [{"metric": "value", "direction": "minimize"}]
    searched = [name for name in meta.get("searched", {}) if name in table.columns]
    data = ReportData(run_dir, meta, table, {}, objectives, searched)
    data.histories = read_histories(run_dir)
    if not data.histories:
        data.histories, data.histories_error = _histories_from_optuna(run_dir, meta)
        if data.histories_error:
            data.notes.append(f"learning curves unavailable: {data.histories_error}")
    missing = [name for name in meta.get("searched", {}) if name not in table.columns]
    if missing:
        data.notes.append(
            f"never sampled in any trial (no column in trials.csv): {', '.join(missing)}"
        )
    return data


def _histories_from_optuna(
    run_dir: Path, meta: dict[str, Any]
) -> tuple[dict[int, dict], str | None]:
    """Older runs have no ``histories.json``: read the histories from the Optuna storage.
    Returns them and, when the storage could not be read, why."""
    if meta.get("backend") != "optuna" or not meta.get("storage"):
        return {}, None
    from harness.results import resolve_storage

    storage = resolve_storage(run_dir, str(meta["storage"]))
    if storage is None:
        return {}, f"the storage {meta['storage']} is gone"
    try:
        import optuna

        from harness.backends.optuna import make_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=meta["name"], storage=make_storage(storage))
        return {
            t.number: json.loads(t.user_attrs["history"])
            for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("history")
        }, None
    except Exception as exc:  # noqa: BLE001 - the report goes on without curves
        log.warning("could not read trial histories from %s: %s", storage, exc)
        return {}, f"could not read {storage} ({exc})"


# --------------------------------------------------------------------------- Optuna study


def optuna_distribution(data: Any):
    """The Optuna distribution of a searched parameter from ``study.json``'s structured
    ``distribution`` (read as data and validated, never parsed out of text)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from harness.space import ChoiceDistribution, distribution_from_json
    from harness.space import IntDistribution as HarnessInt

    distribution = distribution_from_json(data)
    if isinstance(distribution, ChoiceDistribution):
        return CategoricalDistribution(list(distribution.choices))
    if isinstance(distribution, HarnessInt):
        return IntDistribution(
            distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    return FloatDistribution(
        distribution.low, distribution.high, step=distribution.step, log=distribution.log
    )


def _infer_domain(values):
    """A distribution holding every observed value (when ``study.json`` has none)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    plain = [_plain(v) for v in values]
    if plain and all(isinstance(v, int) and not isinstance(v, bool) for v in plain):
        return IntDistribution(min(plain), max(plain))
    if plain and all(isinstance(v, int | float) and not isinstance(v, bool) for v in plain):
        return FloatDistribution(float(min(plain)), float(max(plain)))
    return CategoricalDistribution(sorted(set(plain), key=str) or [None])


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _cast(value: Any, distribution) -> Any:
    """A table cell as ``distribution`` expects it (CSV reads 64 as 64.0 in a column with NaN)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    value = value.item() if hasattr(value, "item") else value
    if isinstance(distribution, IntDistribution):
        return int(value)
    if isinstance(distribution, CategoricalDistribution):
        for choice in distribution.choices:
            if choice == value or str(choice) == str(value):
                return choice
        return value
    return float(value)


def rebuild_study(data: ReportData):
    """An in-memory Optuna study of the completed trials, numbered as in the table.

    Each trial that did not complete is added as a FAIL trial without parameters:
    the trial numbers then match the table's, and Optuna's plots leave those out.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    complete = data.complete
    domains = data.meta.get("searched", {})
    parsed = {}
    for name in data.searched:
        try:
            parsed[name] = optuna_distribution(domains[name]["distribution"])
        except (HarnessError, KeyError, TypeError, ValueError):  # older or damaged study.json
            parsed[name] = _infer_domain(complete[name].dropna().tolist())
    try:
        return _build(data, parsed)
    except ValueError as exc:  # a value outside the recorded domain (study file changed)
        log.info("rebuilding the study with observed domains: %s", exc)
        inferred = {n: _infer_domain(complete[n].dropna().tolist()) for n in data.searched}
        return _build(data, inferred)


def _build(data: ReportData, distributions: dict[str, Any]):
    import optuna
    from optuna.trial import TrialState, create_trial

    study = optuna.create_study(direction=data.direction)
    rows = {int(row["number"]): row for _, row in data.complete.iterrows()}
    top = max([int(n) for n in data.table["number"]], default=-1)
    for number in range(top + 1):
        row = rows.get(number)
        if row is None:
            study.add_trial(create_trial(state=TrialState.FAIL))
            continue
        params = {
            name: _cast(row[name], distributions[name])
            for name in data.searched
            if not _missing(row[name])
        }
        study.add_trial(
            create_trial(
                value=float(row[data.metric]),
                params=params,
                distributions={name: distributions[name] for name in params},
            )
        )
    return study


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# --------------------------------------------------------------------------- plots


@dataclass
class Section:
    """One part of the report: a heading, images (file names) and sentences."""

    title: str
    anchor: str
    images: list[tuple[str, str]] = field(default_factory=list)  # (file, caption)
    notes: list[str] = field(default_factory=list)
    html: str = ""


def _save(fig, out_dir: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=100)
    plt.close(fig)
    return name


def _figure(ax_or_axes):
    """The figure of an Optuna plot, recolored: its Blues map draws the lowest values white."""
    import numpy as np

    fig = np.atleast_1d(ax_or_axes).flat[0].figure
    for ax in fig.axes:
        for collection in ax.collections:
            if collection.get_array() is not None:
                collection.set_cmap("viridis")
    return fig


def history_section(data: ReportData, out_dir: Path) -> Section:
    """Objective per trial number, best-so-far line, pruned trials greyed."""
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
    import matplotlib.pyplot as plt
    import optuna

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
    from optuna.trial import TrialState

    return TrialState.COMPLETE


def parallel_section(data: ReportData, study, out_dir: Path) -> Section:
    """Optuna's parallel-coordinates plot: one line per completed trial."""
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
        if not history and data.histories_error:
            reason = f"learning curves unavailable: {data.histories_error}"
            diagnosis = Diagnosis("no-history", reason)
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


# --------------------------------------------------------------------------- HTML


def write_report(run_dir: Path, out_dir: Path | None = None, top: int = TOP_TRIALS) -> Path:
    """Write the report folder and return its ``index.html``."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = load_report_data(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / REPORT_DIR
    make_folder(out_dir, "--output")
    for pattern in PLOT_FILES:  # plots of an earlier report (never other files)
        for old in out_dir.glob(pattern):
            old.unlink()
    from optuna.exceptions import ExperimentalWarning

    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        plt.style.use("ggplot")
        study = rebuild_study(data) if not data.complete.empty else None
        sections = [history_section(data, out_dir)]
        if study is not None:
            sections += [
                importance_section(data, study, out_dir),
                parallel_section(data, study, out_dir),
                slice_section(data, study, out_dir),
            ]
        else:
            for title, anchor in (("Parameter importances", "importances"),
                                  ("Parallel coordinates", "parallel"),
                                  ("Each parameter against the objective", "slices")):
                sections.append(Section(title, anchor, notes=["no completed trial yet"]))
        sections.append(curves_section(data, out_dir, top))
    index = out_dir / "index.html"
    index.write_text(render_html(data, sections), encoding="utf-8")
    return index


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222;
       padding: 0 1em; }
h1 { margin-bottom: 0.2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td.text, th.text { text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; }
.note { color: #444; }
.best { background: #eef6ee; padding: 0.6em 1em; border-left: 4px solid #4a4; }
nav a { margin-right: 1em; }
"""


def render_html(data: ReportData, sections: list[Section]) -> str:
    """The report page: overview, search space, best trial, plots, trials table."""
    esc = html.escape
    meta, table = data.meta, data.table
    name = meta.get("name", data.run_dir.name)
    counts = table["state"].value_counts().to_dict() if not table.empty else {}
    count_text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no trials"
    objective_text = ", ".join(f"{o['metric']} ({o['direction']})" for o in data.objectives)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>harness report: {esc(name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Study {esc(name)}</h1>",
        f"<p>Backend {esc(str(meta.get('backend', '?')))}; objective {esc(objective_text)}; "
        f"trials: {esc(count_text)}. Generated {datetime.now():%Y-%m-%d %H:%M} from "
        f"<code>{esc(str(data.run_dir))}</code>.</p>",
    ]
    if len(data.objectives) > 1:
        out.append(
            f'<p class="note">Several objectives: the plots use the first one, '
            f"{esc(data.metric or '')}.</p>"
        )
    out.append("<nav>" + "".join(
        f'<a href="#{s.anchor}">{esc(s.title)}</a>' for s in sections
    ) + '<a href="#trials">Trials</a></nav>')
    out += _best_html(data)
    out += _space_html(data)
    for note in data.notes:
        out.append(f'<p class="note">{esc(note)}</p>')
    for section in sections:
        out.append(f'<h2 id="{section.anchor}">{esc(section.title)}</h2>')
        for file, caption in section.images:
            out.append(
                f'<figure><img src="{esc(file)}" alt="{esc(caption)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
        for note in section.notes:
            text = note if section.anchor == "curves" else esc(note)
            out.append(f'<p class="note">{text}</p>')
    out += _table_html(data)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _best_html(data: ReportData) -> list[str]:
    esc = html.escape
    if data.complete.empty:
        reasons = (
            data.table["fail_reason"].dropna().value_counts()
            if "fail_reason" in data.table.columns else None
        )
        text = "No trial completed."
        if reasons is not None and not reasons.empty:
            text += f" Most common failure: {esc(str(reasons.index[0]))}"
        return [f'<p class="best">{text}</p>']
    best = data.complete.iloc[0]
    params = ", ".join(
        f"{esc(n)} = {esc(_show(best[n]))}" for n in data.searched if not _missing(best[n])
    )
    values = ", ".join(
        f"{esc(o['metric'])} = {esc(_show(best[o['metric']]))}"
        for o in data.objectives if o["metric"] in best.index
    )
    tests = [c for c in data.table.columns if str(c).startswith("test_")]
    measured = ", ".join(
        f"{esc(c)} = {esc(_show(best[c]))}" for c in tests if not _missing(best[c])
    )
    test_line = f"<br>test split (measured once): {measured}" if measured else ""
    return [
        f'<p class="best"><b>Best trial #{int(best["number"])}</b>: {values}{test_line}<br>'
        f"{params or 'no searched parameters'}</p>"
    ]


def _space_html(data: ReportData) -> list[str]:
    esc = html.escape
    searched = data.meta.get("searched", {})
    if not searched:
        return ['<p class="note">No searched parameters recorded in study.json.</p>']
    rows = ['<h2 id="space">Search space</h2>', "<table>",
            '<tr><th class="text">parameter</th><th class="text">domain</th>'
            '<th class="text">sampled when</th></tr>']
    for name, info in searched.items():
        info = info if isinstance(info, dict) else {"domain": info}
        rows.append(
            f'<tr><td class="text">{esc(name)}</td><td class="text">'
            f"{esc(str(info.get('domain', '')))}</td><td class=\"text\">"
            f"{esc(str(info.get('condition') or 'always'))}</td></tr>"
        )
    rows.append("</table>")
    literals = data.meta.get("literals") or {}
    if literals:
        fixed = ", ".join(f"{esc(k)} = {esc(_show(v))}" for k, v in literals.items())
        rows.append(f'<p class="note">Fixed: {fixed}</p>')
    return rows


def _table_html(data: ReportData) -> list[str]:
    esc = html.escape
    table = data.table
    out = ['<h2 id="trials">Trials</h2>']
    if table.empty:
        return out + ['<p class="note">No trials recorded.</p>']
    columns = ["number", "state"]
    columns += [o["metric"] for o in data.objectives]
    columns += [c for c in table.columns if str(c).startswith("test_")]
    columns += data.searched
    columns += ["val_loss", "loss", "epochs_run", "duration_s", "retry_of", "fail_reason"]
    seen: list[str] = []
    for column in columns:
        if column in table.columns and column not in seen:
            seen.append(column)
    shown = table.head(TABLE_ROWS)
    out.append("<table><tr>" + "".join(
        f'<th class="{"text" if c in ("state", "fail_reason") else ""}">{esc(c)}</th>'
        for c in seen
    ) + "</tr>")
    for _, row in shown.iterrows():
        cells = []
        for column in seen:
            value = row[column]
            text = "" if _missing(value) else _show(value)
            cls = "text" if column in ("state", "fail_reason") else ""
            cells.append(f'<td class="{cls}">{esc(text)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    if len(table) > TABLE_ROWS:
        out.append(
            f'<p class="note">Showing the best {TABLE_ROWS} of {len(table)} trials; '
            'all of them are in <a href="../trials.csv">trials.csv</a>.</p>'
        )
    return out


def _show(value: Any) -> str:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e12:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)
