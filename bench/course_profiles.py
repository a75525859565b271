"""Every course study's CPU profile (``--profile cpu``) on the data in ``../shared/data``.

Runs ``harness run studies/<name>.toml --profile cpu`` as a subprocess for each
study whose data is here, pointed at the local copy with ``--set`` (some copies
are subsets or downscaled: see each folder's SOURCE.md), and prints one table
row per study: minutes for the whole command, trial #0 (the course's values,
enqueued; the keys the profile sets are at the profile's values), the best
trial, the test figure of the best trial and the trials' states. Studies
whose data or weights are not here are listed with the reason. Not a test:
figures depend on the machine.

    .venv/bin/python bench/course_profiles.py                  # every study
    .venv/bin/python bench/course_profiles.py malaria_cnn linear
    .venv/bin/python bench/course_profiles.py --ensemble       # and each run's ensemble
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

#: study -> the --set values that point it at ../shared/data (None: no data needed).
LOCAL_DATA: dict[str, list[str] | None] = {
    "linear": None,
    "quickstart": None,
    "mnist_dense": [f"dataset.path={DATA / 'mnist'}"],
    # the flagship; its CPU profile trains on the first 20,000 images (the full study, on
    # all 60,000, is docs/performance.md's flagship run)
    "mnist_best": [f"dataset.path={DATA / 'mnist'}"],
    # the copy has 100 training and 2,000 test images: the 2,000 train and validate
    # here, the 100 are the test split
    "fashion_mnist_dense": [
        f"dataset.path={DATA / 'fashion-mnist'}",
        "dataset.train_images=t10k-images-idx3-ubyte.first2000.gz",
        "dataset.train_labels=t10k-labels-idx1-ubyte.first2000.gz",
        "dataset.test_images=train-images-idx3-ubyte.first100.gz",
        "dataset.test_labels=train-labels-idx1-ubyte.first100.gz",
    ],
    "fashion_mnist_cnn": [
        f"dataset.path={DATA / 'fashion-mnist'}",
        "dataset.train_images=t10k-images-idx3-ubyte.first2000.gz",
        "dataset.train_labels=t10k-labels-idx1-ubyte.first2000.gz",
        "dataset.test_images=train-images-idx3-ubyte.first100.gz",
        "dataset.test_labels=train-labels-idx1-ubyte.first100.gz",
    ],
    # only Kaggle's test CSV is here: it is split into train / validation, no test split
    "sign_language_dense": [f"dataset.path={DATA / 'sign-language-mnist' / 'sign_mnist_test.csv'}"],
    "sign_language_cnn": [f"dataset.path={DATA / 'sign-language-mnist' / 'sign_mnist_test.csv'}"],
    "horses_or_humans_cnn": [f"dataset.path={DATA / 'horse-or-human'}"],
    "cats_vs_dogs_cnn": [f"dataset.path={DATA / 'cats-vs-dogs'}"],
    "rock_paper_scissors_cnn": [f"dataset.path={DATA / 'rock-paper-scissors'}"],
    "malaria_cnn": [f"dataset.path={DATA / 'malaria'}"],
    "nyt_headlines_lstm": [f"dataset.path={DATA / 'nyt-headlines'}"],
}
#: studies that cannot run here, and why.
NOT_HERE = {
    "cats_vs_dogs_vgg16_features": "needs the ImageNet VGG16 weights (no network here)",
    "inception_v3_transfer": "needs the ImageNet InceptionV3 weights (no network here)",
    "malaria_transfer": "needs the ImageNet VGG16 / ResNet50 weights (no network here)",
    "fruits_transfer": "needs the ImageNet VGG16 weights (no network here)",
    "doggy_door_vgg16_finetune": "needs the ImageNet VGG16 weights and the doggy-door photos",
}


def ensemble_cell(run_dir: Path) -> str:
    """``harness ensemble`` on a finished run: its test figure beside the best single
    model's, with the paired gap's standard error, or why there is none."""
    done = subprocess.run([sys.executable, "-m", "harness", "ensemble", str(run_dir)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return "not built: " + (done.stderr.strip().splitlines() or ["?"])[-1][:120]
    record = json.loads((run_dir / "ensemble.json").read_text())["ensemble"]
    members = sum(1 for m in record["members"] if m["weight"] > 0)
    test = record.get("test") or {}
    metric = "accuracy" if "accuracy" in record["validation"] else "loss"
    if not test:
        return f"{members} models, val {record['validation'][metric]:.4f} (no test split)"
    gap = test.get("accuracy_gap")
    spread = "" if gap is None else f", gap {gap:+.4f} ± {test['gap_standard_error']:.4f}"
    return (f"{members} models, test {test['ensemble'][metric]:.4f} against "
            f"{test['best_single'][metric]:.4f}{spread}")


def run(name: str, runs: Path, ensemble: bool = False) -> dict:
    """One study's CPU profile through the CLI; its figures read back from the run folder
    (and, with ``ensemble``, its ensemble's, see :func:`ensemble_cell`)."""
    command = [sys.executable, "-m", "harness", "run", str(REPO / "studies" / f"{name}.toml"),
               "--profile", "cpu", "--runs-dir", str(runs), "--no-progress"]
    for value in LOCAL_DATA[name] or []:
        command += ["--set", value]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    minutes = (time.perf_counter() - started) / 60
    run_dir = next(runs.iterdir(), None) if runs.is_dir() else None
    if done.returncode not in (0, 1) or run_dir is None or not (run_dir / "trials.csv").is_file():
        return {"name": name, "minutes": minutes,
                "error": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
    meta = json.loads((run_dir / "study.json").read_text())
    metric = meta["objectives"][0]["metric"]
    with open(run_dir / "trials.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    complete = [r for r in rows if r["state"] == "complete" and r.get(metric)]
    first = next((r for r in rows if r["number"] == "0"), None)
    best = complete[0] if complete else None  # trials.csv is sorted best first
    test_path = run_dir / "test.json"
    tests = json.loads(test_path.read_text()).get("trials", {}) if test_path.is_file() else {}
    test = tests.get(best["number"]) if best else None
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    return {
        "name": name,
        "minutes": minutes,
        "metric": metric,
        "trial0": _value(first, metric),
        "best": f"#{best['number']} {_value(best, metric)}" if best else "-",
        "test": ", ".join(f"{k}={v:.4f}" for k, v in (test or {}).items() if "loss" not in k)
        or "-",
        "states": ", ".join(f"{n} {s}" for s, n in states.items()),
        "ensemble": ensemble_cell(run_dir) if ensemble else None,
        "params": " ".join(
            f"{key.rsplit('.', 1)[-1]}={_short(best[key])}"
            for key in meta.get("searched", {})
            if best and best.get(key) not in (None, "")
        ),
    }


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:g}" if number == int(number) or abs(number) >= 0.01 else f"{number:.2g}"


def _value(row: dict | None, metric: str) -> str:
    if not row or not row.get(metric):
        return f"- ({row['state']})" if row else "-"
    return f"{float(row[metric]):.4f}"


def main() -> None:
    """Run the chosen studies' CPU profiles one after the other and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("studies", nargs="*", help="default: every study")
    parser.add_argument(
        "--keep", type=Path, help="keep each run's folder under this folder (default: deleted)"
    )
    parser.add_argument(
        "--ensemble", action="store_true",
        help="after each profile, harness ensemble on its kept models (an extra column)",
    )
    args = parser.parse_args()
    names = args.studies or sorted([*LOCAL_DATA, *NOT_HERE])
    unknown = [name for name in names if name not in LOCAL_DATA and name not in NOT_HERE]
    if unknown:
        parser.error(f"no profile for {', '.join(unknown)}; known: "
                     f"{', '.join(sorted([*LOCAL_DATA, *NOT_HERE]))}")
    print("| study | minutes | objective | trial #0 | best | test (best trial) | trials | best "
          "parameters |" + (" ensemble |" if args.ensemble else ""))
    print("|---|---:|---|---:|---:|---|---|---|" + ("---|" if args.ensemble else ""))
    for name in names:
        if name in NOT_HERE:
            print(f"| {name} | - | - | - | - | not run: {NOT_HERE[name]} | - | - |", flush=True)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            runs = args.keep / name if args.keep else Path(tmp)
            row = run(name, runs, args.ensemble)
        if "error" in row:
            print(f"| {name} | {row['minutes']:.1f} | error: {row['error']} |", flush=True)
            continue
        extra = f" {row['ensemble']} |" if args.ensemble else ""
        print(
            f"| {name} | {row['minutes']:.1f} | {row['metric']} | {row['trial0']} | "
            f"{row['best']} | {row['test']} | {row['states']} | {row['params']} |{extra}",
            flush=True,
        )


if __name__ == "__main__":
    main()
