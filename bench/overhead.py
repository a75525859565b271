"""Start-up overhead: a one-trial ``harness run`` against a bare Keras script, same work.

Both sides train the same CNN (Conv2D(32, 3) -> MaxPool -> Flatten -> Dense(128) ->
Dense(10, softmax), adam, batch 32) for the same epochs on the same MNIST images
(the first ``--limit`` training images of ``../shared/data/mnist``, 10% held out
for validation, the 10,000 test images measured once at the end), each as a
fresh process, in interleaved pairs. Printed: the wall time of each command, the
fit time each reports, the median ratio harness / bare for both, and the
validation accuracy each reached. Not a test: figures depend on the machine.

harness trains with its default ``[train].steps_per_execution`` (32 batches per call
into TensorFlow; the bare script runs Keras's default, 1): the same updates with
less per-batch overhead. ``--steps-per-execution 1`` makes the two trainings
identical, to measure what harness itself adds.

It also prints a start-up timeline of both sides: seconds from launch to the
command's own imports (``harness.cli`` imported), the worker's interpreter start,
TensorFlow imported, the first ``fit`` call, the end of the last ``evaluate`` (the
test split measured) and the command's return. The times come from a probe: a
``sitecustomize`` module put on ``PYTHONPATH`` for both sides (and so for harness's
spawned worker) that appends a wall-clock time stamp to a file when ``harness.cli``,
``tensorflow`` or ``keras`` finish importing and when ``keras.Model.fit`` and
``evaluate`` start and end. Both sides run with the same probe.

    .venv/bin/python bench/overhead.py            # --pairs 3 --limit 10000 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "mnist"

STUDY = """
[study]
name = "overhead"
trials = 1
seed = 0

[optuna]
sampler = "random"
pruner = "none"

[dataset]
name = "mnist"
path = "{data}"
limit = {limit}
validation_split = 0.1

[model]
name = "cnn"
conv_layers = 1
filters = 32
units = 128

[train]
epochs = {epochs}
batch_size = 32
{extra}"""

BARE = """
import gzip, json, sys, time
import numpy as np

def idx(path, offset):
    with gzip.open(path, "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)

data, limit, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = idx(f"{data}/train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)[:limit] / 255.0
y = idx(f"{data}/train-labels-idx1-ubyte.gz", 8)[:limit]
x_test = idx(f"{data}/t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1) / 255.0
y_test = idx(f"{data}/t10k-labels-idx1-ubyte.gz", 8)
order = np.random.default_rng(0).permutation(len(x))
cut = len(x) - len(x) // 10
train, val = order[:cut], order[cut:]
import keras
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((28, 28, 1)),
    keras.layers.Conv2D(32, 3, activation="relu"),
    keras.layers.MaxPooling2D(2),
    keras.layers.Flatten(),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
started = time.perf_counter()
history = model.fit(x[train].astype("float32"), y[train], batch_size=32, epochs=epochs,
                    validation_data=(x[val].astype("float32"), y[val]), verbose=0)
fit = time.perf_counter() - started
test = model.evaluate(x_test.astype("float32"), y_test, verbose=0, return_dict=True)
print(json.dumps({"fit": fit, "val_accuracy": history.history["val_accuracy"][-1],
                  "test_accuracy": test["accuracy"], "params": model.count_params()}))
"""


#: The timeline probe: imported at interpreter start (as ``sitecustomize``) by every process
#: of a run, harness's spawned worker included; appends one JSON line per event to the
#: file named by ``BENCH_TIMELINE``.
PROBE = r"""
import importlib.abc, json, os, sys, time

_LOG = os.environ.get("BENCH_TIMELINE")


def _note(event):
    with open(_LOG, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"t": time.time(), "pid": os.getpid(), "event": event,
                                 "worker": "--multiprocessing-fork" in sys.argv}) + "\n")


def _patch_keras(keras):
    model = keras.Model
    for method in ("fit", "evaluate"):
        real = getattr(model, method)

        def wrapped(self, *args, _real=real, _method=method, **kwargs):
            _note(_method + " start")
            try:
                return _real(self, *args, **kwargs)
            finally:
                _note(_method + " end")

        setattr(model, method, wrapped)


class _Watch(importlib.abc.MetaPathFinder):
    names = {"harness.cli", "tensorflow", "keras"}

    def find_spec(self, name, path, target=None):
        # not only imports ask (importlib.util.find_spec too): wrap each spec handed out
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        real = spec.loader.exec_module

        def exec_module(module, _real=real, _name=name):
            _real(module)
            _note("imported " + _name)
            if _name == "keras":
                _patch_keras(module)

        spec.loader.exec_module = exec_module
        return spec


if _LOG:
    _note("interpreter")
    sys.meta_path.insert(0, _Watch())
"""

#: Timeline rows: label, and how to read the row's time from one run's events.
TIMELINE = (
    ("the command's own imports (harness.cli imported)", "cli"),
    ("the worker starts (its interpreter)", "worker"),
    ("TensorFlow imported", "tensorflow"),
    ("fit starts", "fit"),
    ("test split measured (last evaluate ends)", "test"),
    ("the command returns", "returns"),
)


def probe_env(folder: Path, log: Path) -> dict[str, str]:
    """The environment of one measured command: the probe on PYTHONPATH, its log file."""
    probe = folder / "probe"
    probe.mkdir(exist_ok=True)
    (probe / "sitecustomize.py").write_text(PROBE)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{probe}{os.pathsep}{path}" if path else str(probe),
            "BENCH_TIMELINE": str(log)}


def timeline(log: Path, launched: float, returned: float, main_pid: int) -> dict[str, float]:
    """Seconds from launch of each timeline event of one command (absent: not seen)."""
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    out: dict[str, float] = {"returns": returned - launched}

    def first(match) -> None | float:
        times = [e["t"] for e in events if match(e)]
        return min(times) - launched if times else None

    found = {
        "cli": first(lambda e: e["pid"] == main_pid and e["event"] == "imported harness.cli"),
        "worker": first(lambda e: e["worker"] and e["event"] == "interpreter"),
        "tensorflow": first(lambda e: e["event"] == "imported tensorflow"),
        "fit": first(lambda e: e["event"] == "fit start"),
    }
    ends = [e["t"] for e in events if e["event"] == "evaluate end"]
    found["test"] = max(ends) - launched if ends else None
    out.update({key: value for key, value in found.items() if value is not None})
    return out


def run_measured(command: list[str], folder: Path) -> tuple[subprocess.CompletedProcess, float,
                                                            dict[str, float]]:
    """Run ``command`` with the probe; its result, wall seconds and timeline."""
    log = folder / f"timeline-{time.time_ns()}.jsonl"
    env = probe_env(folder, log)
    launched, started = time.time(), time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    returned = time.time()
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    points = timeline(log, launched, returned, process.pid) if log.is_file() else {}
    return done, wall, points


def run_harness(folder: Path, args) -> dict:
    """One ``harness run`` of the one-trial study; its wall time and reported figures."""
    study = folder / "study.toml"
    extra = ""
    if args.steps_per_execution is not None:
        extra = f"steps_per_execution = {args.steps_per_execution}\n"
    study.write_text(
        textwrap.dedent(STUDY.format(data=DATA, limit=args.limit, epochs=args.epochs, extra=extra))
    )
    runs = folder / f"runs-{time.time_ns()}"
    done, wall, points = run_measured(
        [sys.executable, "-m", "harness", "run", str(study), "--runs-dir", str(runs),
         "--no-progress"],
        folder,
    )
    if done.returncode != 0:
        raise SystemExit(f"harness run failed:\n{done.stderr[-2000:]}")
    import csv

    with open(runs / "overhead" / "trials.csv", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    return {
        "wall": wall,
        "fit": float(row["train_seconds"]),
        "val_accuracy": float(row["val_accuracy"]),
        "test_accuracy": float(row.get("test_accuracy") or "nan"),
        "params": float(row["params"]),
        "timeline": points,
    }


def run_bare(folder: Path, args) -> dict:
    """The same training as a plain Keras script in a fresh process."""
    done, wall, points = run_measured(
        [sys.executable, "-c", BARE, str(DATA), str(args.limit), str(args.epochs)], folder
    )
    if done.returncode != 0:
        raise SystemExit(f"bare script failed:\n{done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall": wall, **figures, "timeline": points}


def print_timeline(rows: list[dict]) -> None:
    """The start-up timeline: median (range) over pairs of seconds from launch."""
    print(f"\nstart-up timeline, seconds from launch: median (range) of {len(rows)} pairs")
    print("| | harness | bare script |")
    print("|---|---:|---:|")
    for label, key in TIMELINE:
        cells = []
        for side in ("harness", "bare"):
            values = [r[side]["timeline"][key] for r in rows if key in r[side]["timeline"]]
            if not values:
                cells.append("-")
            elif len(values) == 1:
                cells.append(f"{values[0]:.2f}")
            else:
                cells.append(f"{statistics.median(values):.2f} ({min(values):.2f}-"
                             f"{max(values):.2f})")
        print(f"| {label} | {cells[0]} | {cells[1]} |")


def main() -> None:
    """Run ``--pairs`` interleaved pairs and print the figures and median ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--steps-per-execution", type=int, default=None,
        help="harness's [train].steps_per_execution (default: harness's default; 1 is what "
        "the bare script runs, to measure harness's own overhead)",
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing: the benchmark needs the MNIST IDX files there")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            first, second = (run_harness, run_bare) if pair % 2 == 0 else (run_bare, run_harness)
            results = {}
            for side in (first, second):
                name = "harness" if side is run_harness else "bare"
                results[name] = side(Path(tmp), args)
            rows.append(results)
            h, b = results["harness"], results["bare"]
            print(
                f"pair {pair + 1}: harness {h['wall']:.1f} s (fit {h['fit']:.1f} s, val "
                f"{h['val_accuracy']:.4f}, test {h['test_accuracy']:.4f}) | bare "
                f"{b['wall']:.1f} s (fit {b['fit']:.1f} s, val {b['val_accuracy']:.4f}, test "
                f"{b['test_accuracy']:.4f})",
                flush=True,
            )
    wall = statistics.median(r["harness"]["wall"] / r["bare"]["wall"] for r in rows)
    fit = statistics.median(r["harness"]["fit"] / r["bare"]["fit"] for r in rows)
    params = {r["harness"]["params"] for r in rows} | {r["bare"]["params"] for r in rows}
    print(f"parameters: {sorted(params)} (the same model on both sides when one value)")
    print(f"whole command, harness / bare (median of {len(rows)} pairs): {wall:.2f}x")
    print(f"fit time, harness / bare (median): {fit:.2f}x")
    walls = [r["harness"]["wall"] / r["bare"]["wall"] for r in rows]
    fits = [r["harness"]["fit"] / r["bare"]["fit"] for r in rows]
    print(f"range over pairs: whole command {min(walls):.2f}x-{max(walls):.2f}x, fit "
          f"{min(fits):.2f}x-{max(fits):.2f}x")
    print_timeline(rows)


if __name__ == "__main__":
    main()
