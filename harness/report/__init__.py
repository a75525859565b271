"""``harness report STUDY``: a static HTML report a person reads without running anything.

``runs/<study>/report/index.html`` with PNGs next to it: the optimization
history, parameter importances, a parallel-coordinates plot, each searched
parameter against the objective, and the learning curves of the best trials
with their overfitting gap called out.

Everything is built from backend-agnostic files: ``trials.csv``, ``study.json``
and ``histories.json`` (per-epoch Keras logs), so a study stored by Optuna or
by KerasTuner reports the same way. Optuna's plots and importance evaluator run
on an in-memory Optuna study rebuilt from the table.

The parts: :mod:`~harness.report.data` (reading the run directory, and the Optuna
study rebuilt from it), :mod:`~harness.report.diagnosis` (what learning curves say),
:mod:`~harness.report.plots` (the figures) and :mod:`~harness.report.html` (the page).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import harness
from harness.errors import HarnessError
from harness.report.data import load_report_data, rebuild_study
from harness.report.diagnosis import diagnose
from harness.report.html import render_html
from harness.report.plots import (
    PLOT_FILES,
    Section,
    curves_section,
    history_section,
    importance_section,
    parallel_section,
    slice_section,
)
from harness.results import make_folder, resolve_run_dir

__all__ = ["add_parser", "cmd_report", "diagnose", "write_report"]

REPORT_DIR = "report"
#: How many of the best trials get learning curves.
TOP_TRIALS = 3


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


@harness.hookimpl
def harness_register_commands(subparsers, add_common) -> None:
    """Add ``harness report``."""
    add_parser(subparsers, add_common)


def cmd_report(args) -> int:
    if args.top < 1:
        raise HarnessError(f"--top must be at least 1, got {args.top}")
    run_dir = resolve_run_dir(args.target, args.runs_dir)
    index = write_report(run_dir, args.output, top=args.top)
    print(f"report: {index}")
    return 0


def write_report(run_dir: Path, out_dir: Path | None = None, top: int = TOP_TRIALS) -> Path:
    """Write the report folder and return its ``index.html``."""
    # matplotlib: loaded when a report is drawn, never by `harness --help`
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # only once the backend is chosen (Agg: no display)

    data = load_report_data(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / REPORT_DIR
    make_folder(out_dir, "--output")
    for pattern in PLOT_FILES:  # plots of an earlier report (never other files)
        for old in out_dir.glob(pattern):
            old.unlink()
    # optuna: loaded when a report is drawn, never by `harness --help`
    from optuna.exceptions import ExperimentalWarning

    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        # matplotlib's drawing notes ("identical low and high xlims" for a parameter only
        # one trial has set) are about the plot, not the study: not for the terminal
        warnings.simplefilter("ignore", UserWarning)
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
