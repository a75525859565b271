"""One hold-out against k-fold cross-validation on a course study's CPU profile.

For each study, runs its CPU profile twice through the CLI, on ../shared/data: as
the study file says (one validation split, groups as the study sets them), then with
``--set study.folds=K``. Prints, for each: the selected trial and its parameters, its
validation figure with its standard error (binomial from the validation size, or
the fold spread over sqrt(K)), its test figure when the data has a test split
(measured once, on the model the study keeps: with folds, the configuration refitted
on all the training data), and the minutes the run took (command start to end).

    .venv/bin/python bench/validation_schemes.py rock_paper_scissors_cnn malaria_cnn
    .venv/bin/python bench/validation_schemes.py horses_or_humans_cnn --folds 3
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
#: Study -> its folder under ../shared/data.
FOLDERS = {
    "rock_paper_scissors_cnn": "rock-paper-scissors",
    "horses_or_humans_cnn": "horse-or-human",
    "malaria_cnn": "malaria",
    "cats_vs_dogs_cnn": "cats-vs-dogs",
}


def run(study: str, runs_dir: Path, folds: int) -> dict:
    """Run the study's CPU profile (with ``folds`` when not 0); what it selected."""
    args = [
        sys.executable, "-m", "harness", "run", str(ROOT / "studies" / f"{study}.toml"),
        "--profile", "cpu", "--set", f"dataset.path={DATA / FOLDERS[study]}",
        "--runs-dir", str(runs_dir), "--no-progress",
    ]
    if folds:
        args += ["--set", f"study.folds={folds}"]
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True)
    minutes = (time.monotonic() - started) / 60
    if done.returncode != 0:
        sys.exit(f"{study} (folds {folds}) failed:\n{done.stderr[-3000:]}")
    run_dir = next(p for p in runs_dir.iterdir() if (p / "best.json").is_file())
    best = json.loads((run_dir / "best.json").read_text())
    table = _complete_rows(run_dir)
    row = next(r for r in table if int(r["number"]) == best["trial"])
    return {"minutes": minutes, "best": best, "row": row, "trials": len(table)}


def _complete_rows(run_dir: Path) -> list[dict]:
    import pandas as pd

    table = pd.read_csv(run_dir / "trials.csv")
    return table[table["state"] == "complete"].to_dict("records")


def standard_error(row: dict, metric: str) -> float | None:
    """The fold spread over sqrt(K), or the binomial one from the validation size."""
    folds = row.get("folds")
    if folds and not math.isnan(folds) and f"{metric}_std" in row:
        return row[f"{metric}_std"] / math.sqrt(folds)
    n = row.get("val_examples")
    if n and not math.isnan(n):
        p = row[metric]
        return math.sqrt(p * (1 - p) / n)
    return None


def line(study: str, scheme: str, found: dict, metric: str) -> str:
    row, best = found["row"], found["best"]
    error = standard_error(row, metric)
    val = f"{row[metric]:.4f}" + ("" if error is None else f" ± {error:.4f}")
    test = (best.get("test") or {}).get(f"test_{metric.removeprefix('val_')}")
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in sorted(best["params"].items()))
    return (f"| {study} | {scheme} | #{best['trial']} ({found['trials']} complete) | {val} | "
            f"{'-' if test is None else f'{test:.4f}'} | {found['minutes']:.1f} | {params} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", choices=sorted(FOLDERS))
    parser.add_argument("--folds", type=int, default=3)
    args = parser.parse_args()
    print("| study | scheme | selected | val (± s.e.) | test | minutes | parameters |")
    print("|---|---|---|---|---|---|---|")
    for study in args.studies:
        for folds in (0, args.folds):
            scheme = f"{folds} folds" if folds else "one hold-out"
            with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
                found = run(study, Path(tmp), folds)
            print(line(study, scheme, found, "val_accuracy"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
