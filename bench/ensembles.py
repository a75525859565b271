"""Ensemble against best single model: ``harness ensemble`` on a study's kept models.

For each seed, runs the study (``harness run STUDY --set study.seed=S``, its own run
folder), then ``harness ensemble`` on it, and prints the best single model's and the
ensemble's validation and test figures side by side, with the paired difference on the
test split and its standard error (from the test examples only one of the two gets
right). ``--existing RUN_DIR`` skips the run and ensembles a finished study (the
flagship, whose run takes most of an hour).

The test split chose nothing: the members are the study's kept models (selected on
validation), their weights are chosen on validation, and the test split is measured
once, for the ensemble and the best single model.

    .venv/bin/python bench/ensembles.py studies/quickstart.toml --seeds 0 1 2
    .venv/bin/python bench/ensembles.py --existing runs/mnist_best
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HARNESS = [sys.executable, "-m", "harness"]


def _run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*HARNESS, *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"harness {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


def run_study(study: str, seed: int, runs_dir: Path, sets: list[str]) -> tuple[Path, float]:
    """Run the study with ``seed`` into its own folder; its run folder and minutes."""
    name = f"{Path(study).stem}-seed{seed}"
    extra = [w for s in sets for w in ("--set", s)]
    started = time.monotonic()
    _run("run", study, "--runs-dir", str(runs_dir), "--no-progress",
         "--set", f"study.seed={seed}", "--set", f"study.name={name}", *extra)
    return runs_dir / name, (time.monotonic() - started) / 60


def ensemble(run_dir: Path, method: str) -> tuple[dict, float]:
    """``harness ensemble`` on ``run_dir``; its record and the seconds it took."""
    started = time.monotonic()
    _run("ensemble", str(run_dir), "--method", method)
    card = json.loads((run_dir / "ensemble.json").read_text(encoding="utf-8"))
    return card["ensemble"], time.monotonic() - started


def row(label: str, record: dict, seconds: float) -> tuple[str, float | None]:
    """A Markdown table row of one ensemble, and its test accuracy gap."""
    members = " ".join(f"#{m['trial']}:{m['weight']:.2f}" for m in record["members"])
    val, single_val = record["validation"], record["best_single_validation"]
    metric = "accuracy" if "accuracy" in val else "loss"
    test = record.get("test") or {}
    ens_test = (test.get("ensemble") or {}).get(metric)
    single_test = (test.get("best_single") or {}).get(metric)
    gap = test.get("accuracy_gap")
    error = test.get("gap_standard_error")
    gap_text = "-" if gap is None else f"{gap:+.4f} ± {error:.4f}"
    cells = [
        label, members, f"#{record['best_single']}",
        f"{single_val[metric]:.4f}", f"{val[metric]:.4f}",
        "-" if single_test is None else f"{single_test:.4f}",
        "-" if ens_test is None else f"{ens_test:.4f}",
        gap_text,
        "-" if record.get("disagreement") is None else f"{record['disagreement']:.3f}",
        f"{seconds:.0f} s",
    ]
    return "| " + " | ".join(cells) + " |", gap


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", nargs="?", help="study file to run for each seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE, as harness run")
    parser.add_argument("--existing", type=Path, nargs="+", help="finished run folders instead")
    parser.add_argument("--method", choices=("greedy", "average"), default="greedy")
    parser.add_argument("--runs-dir", type=Path, help="where the runs go (default: a temp dir)")
    args = parser.parse_args()
    if not args.study and not args.existing:
        parser.error("give a study file, or --existing RUN_DIR")
    print("| run | members (weight) | best single | val (single) | val (ensemble) "
          "| test (single) | test (ensemble) | test gap ± s.e. | disagreement | ensemble time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    gaps = []
    if args.existing:
        runs = [(str(path), path) for path in args.existing]
    else:
        runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="bench-ensembles-"))
        runs = []
        for seed in args.seeds:
            run_dir, minutes = run_study(args.study, seed, runs_dir, args.set)
            runs.append((f"seed {seed} ({minutes:.1f} min)", run_dir))
    for label, run_dir in runs:
        record, seconds = ensemble(run_dir, args.method)
        line, gap = row(label, record, seconds)
        print(line, flush=True)
        if gap is not None:
            gaps.append((gap, record["test"]["gap_standard_error"]))
    if gaps:
        noise = sum(abs(g) < 2 * e for g, e in gaps)
        better = sum(g >= 2 * e for g, e in gaps)
        print(f"\ntest accuracy, ensemble minus best single: median "
              f"{statistics.median(g for g, _ in gaps):+.4f} over {len(gaps)} run(s); "
              f"{better} better by two standard errors or more, {noise} within noise, "
              f"{len(gaps) - better - noise} worse")
    return 0


if __name__ == "__main__":
    sys.exit(main())
