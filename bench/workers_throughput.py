"""Benchmark: trials per hour of the quickstart study with 1 worker vs 2 worker processes.

Runs ``harness run studies/quickstart.toml`` as a subprocess (a fresh ``--runs-dir``
in a temporary folder each time, the same ``--seed``) once with ``--workers 1`` and
once with ``--workers 2``, and measures:

* wall-clock seconds of the whole command, end to end: interpreter and TensorFlow
  start-up, spawning the workers, every trial, writing the results;
* the sum of the trials' own ``duration_s`` (``trials.csv``: build, fit, evaluate),
  so that the per-trial slowdown of sharing the cores shows apart from start-up.

Both runs do the same amount of training: ``--trials`` trials (default 8) of exactly
``--epochs`` epochs (default 6; ``--set train.epochs=6``), with the pruner off
(``--set optuna.pruner=none``: what gets pruned would depend on the order trials
finish in) and the study's threshold callback, if it has one, out of reach (no trial
stops early). The searched architecture (filters, conv layers, units) still differs
from trial to trial, which is why the mean trial duration is printed too.

What to expect: without a GPU, harness splits the CPU cores between the workers
(``harness.workers.plan_workers``: each of 2 workers gets half the threads), so on a
2-core machine two workers share the same two cores. Where one worker's training
already keeps both cores busy, only the idle time between and inside trials (process
start-up, storage, saving the best model, single-threaded ops) is won back: roughly
1.0-1.3x. The quickstart's model is so small that one trial barely uses a second
thread (a trial takes about as long on 1 thread as on 2), so two 1-thread workers can
do better than that here; see the measured figures in bench/README.md. With one GPU
per worker (harness pins worker i to GPU i), throughput grows nearly linearly with
the number of GPUs as long as the CPU-side data pipeline keeps every GPU fed; that
case needs a GPU machine and was not measured (the figures in bench/README.md come
from a 2-core machine without a GPU).

Run: ``.venv/bin/python bench/workers_throughput.py [--trials 8] [--epochs 6]
[--repeat 3]``. Each worker count runs ``--repeat`` times, interleaved (the order
alternates from one round to the next); the best and the median are printed, since a
shared machine's other load makes single runs noisy. The 1-minute load average is
printed before every run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STUDY = REPO / "studies" / "quickstart.toml"


@dataclass
class Run:
    """One ``harness run``: its worker count, wall seconds and what trials.csv says."""

    workers: int
    wall_s: float
    trials: int
    complete: int
    trial_s: float
    epochs: float
    load: float

    @property
    def per_hour(self) -> float:
        """Finished trials per hour of wall-clock time, start-up included."""
        return self.trials * 3600 / self.wall_s

    @property
    def mean_trial_s(self) -> float:
        """Mean ``duration_s`` of one trial (inside its worker, start-up excluded)."""
        return self.trial_s / self.trials

    @property
    def busy(self) -> float:
        """Share of the workers' wall time spent inside trials."""
        return self.trial_s / (self.wall_s * self.workers)


def overrides(study: Path, epochs: int) -> list[str]:
    """``--set`` arguments that make every trial train exactly ``epochs`` epochs."""
    sets = [f"train.epochs={epochs}", "optuna.pruner=none"]
    with open(study, "rb") as handle:
        raw = tomllib.load(handle)
    if "threshold" in raw.get("callbacks", {}):
        sets.append("callbacks.threshold.value=2.0")  # accuracy never reaches it
    return [arg for value in sets for arg in ("--set", value)]


def run_study(
    study: Path, workers: int, trials: int, epochs: int, seed: int, extra: tuple[str, ...] = ()
) -> Run:
    """Run the study once in a fresh runs dir (``extra``: more ``harness run`` arguments);
    time it and read its trials.csv."""
    import pandas as pd

    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        command = [
            sys.executable, "-m", "harness", "run", str(study), "--runs-dir", str(runs),
            "--trials", str(trials), "--workers", str(workers), "--seed", str(seed),
            "--no-progress", *overrides(study, epochs), *extra,
        ]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"harness run failed ({done.returncode}):\n{done.stderr[-3000:]}")
        (table_path,) = runs.glob("*/trials.csv")
        table = pd.read_csv(table_path)
    epochs_run = table["epochs_run"].sum() if "epochs_run" in table else float("nan")
    return Run(
        workers=workers,
        wall_s=wall,
        trials=len(table),
        complete=int((table["state"] == "complete").sum()),
        trial_s=float(table["duration_s"].sum()),
        epochs=float(epochs_run),
        load=load,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the study with 1 and N workers, interleaved, and print trials/hour and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", type=Path, default=DEFAULT_STUDY,
                        help="study file (default: studies/quickstart.toml)")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6, help="epochs of every trial")
    parser.add_argument("--workers", type=int, default=2, help="compared against 1 worker")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of each")
    args = parser.parse_args(argv)
    counts = (1, args.workers)
    print(f"study {args.study.name}: {args.trials} trials x {args.epochs} epochs, seed "
          f"{args.seed}, pruner off; {os.cpu_count()} CPU cores; best and median of "
          f"{args.repeat} interleaved runs; load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    runs: dict[int, list[Run]] = {n: [] for n in counts}
    for round_ in range(args.repeat):
        for workers in counts if round_ % 2 == 0 else counts[::-1]:
            run = run_study(args.study, workers, args.trials, args.epochs, args.seed)
            runs[workers].append(run)
            print(f"  round {round_ + 1}, {workers} worker(s): {run.wall_s:6.1f} s wall, "
                  f"{run.per_hour:5.0f} trials/h, {run.complete}/{run.trials} complete, "
                  f"{run.epochs:.0f} epochs, load {run.load:.2f} before")
    print(f"{'workers':>7s} {'trials/h best':>13s} {'median':>7s} {'wall s':>7s} "
          f"{'sum trial s':>11s} {'mean trial s':>12s} {'in trials':>9s}")
    best = {n: max(r.per_hour for r in rs) for n, rs in runs.items()}
    median = {n: statistics.median(r.per_hour for r in rs) for n, rs in runs.items()}
    mean_trial = {n: statistics.median(r.mean_trial_s for r in rs) for n, rs in runs.items()}
    for n, rs in runs.items():
        print(f"{n:7d} {best[n]:13.0f} {median[n]:7.0f} "
              f"{statistics.median(r.wall_s for r in rs):7.1f} "
              f"{statistics.median(r.trial_s for r in rs):11.1f} {mean_trial[n]:12.2f} "
              f"{statistics.median(r.busy for r in rs):9.0%}")
    many = args.workers
    print(f"ratio {many} workers / 1 worker, trials per hour: best "
          f"{best[many] / best[1]:.2f}x, median {median[many] / median[1]:.2f}x; "
          f"each trial took {mean_trial[many] / mean_trial[1]:.2f}x as long "
          f"(expect ~1.0-1.3x where one worker keeps the cores busy; ~{many}x with "
          f"one GPU per worker)")
    print(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
