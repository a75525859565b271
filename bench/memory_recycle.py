"""Benchmark: a worker's resident memory over 30 trials, without and with recycling.

Keras leaks a little memory with every model a process builds and fits, even after
``keras.backend.clear_session()``; harness bounds it by restarting a worker process
after ``--recycle-after N`` trials (or above ``[study].max_worker_memory_mb``). The
target: over 30 trials no worker's resident memory grows by more than 300 MB.

Writes a small study into a temporary folder (scikit-learn's 8x8 ``digits``, a
``cnn`` with searched conv layers, filters and units, 1 epoch per trial, random
sampler, no pruner) and a probe plugin that appends "phase number pid rss_mb" at
every trial's start and end (``harness.workers.resident_memory_mb``), then runs
``harness run`` as a subprocess twice, each in a fresh ``--runs-dir``:

* (a) no recycling (``--recycle-after 0``): one worker process runs every trial;
* (b) ``--recycle-after 10``: a fresh worker process every 10 trials.

Optionally (c) ``--ceiling-mb MB``: ``--set study.max_worker_memory_mb=MB``, a fresh
worker once one is above MB between trials.

For each it prints, per worker process: trials run, first and peak RSS, growth (its
last sample minus its first, i.e. from its first trial's start, after TensorFlow is
imported, to its last trial's end) and growth after its first trial (what the leak
adds once the one-time set-up is paid); then the worker processes used, the wall
time, the largest peak and growth, and the ratio of the largest growth (b) / (a).
The RSS figures depend on the TensorFlow build and the machine, not only on harness.

Run: ``.venv/bin/python bench/memory_recycle.py [--trials 30] [--recycle-after 10]
[--ceiling-mb 850] [--workers 1]`` (about 3 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

STUDY = """\
[study]
name = "memory"
trials = {trials}
seed = {seed}

[optuna]
sampler = "random"
pruner = "none"

[dataset]
name = "digits"

[model]
name = "cnn"
padding = "same"
conv_layers = {{int = [1, 2]}}
filters = {{int = [8, 64], step = 8}}
units = {{int = [16, 256], step = 16}}

[train]
epochs = {epochs}
batch_size = 32
"""

PROBE = '''\
import os

import harness
from harness.workers import resident_memory_mb


def _record(phase, trial):
    with open(os.environ["MEMORY_PROBE_FILE"], "a") as handle:
        handle.write(f"{phase} {trial.number} {os.getpid()} {resident_memory_mb():.1f}\\n")


@harness.hookimpl
def harness_trial_start(trial):
    _record("start", trial)


@harness.hookimpl
def harness_trial_end(trial, result):
    _record("end", trial)
'''


@dataclass
class Worker:
    """One worker process's samples, in the order it wrote them."""

    pid: int
    numbers: list[int]
    rss: list[float]

    @property
    def growth(self) -> float:
        """Last sample minus first: first trial's start to last trial's end."""
        return self.rss[-1] - self.rss[0]

    @property
    def growth_after_first(self) -> float:
        """Last sample minus the end of the first trial (one-time set-up left out)."""
        return self.rss[-1] - self.rss[min(1, len(self.rss) - 1)]


@dataclass
class Outcome:
    """One ``harness run``: its workers, wall seconds and trial table figures."""

    label: str
    workers: list[Worker]
    wall_s: float
    failed: int
    distinct: int
    trials: int
    load: float

    @property
    def peak(self) -> float:
        return max(max(w.rss) for w in self.workers)

    @property
    def growth(self) -> float:
        return max(w.growth for w in self.workers)


def read_probe(path: Path) -> list[Worker]:
    """Group the probe's lines by process id, in order of appearance."""
    workers: dict[int, Worker] = {}
    for line in path.read_text().splitlines():
        phase, number, pid, rss = line.split()
        worker = workers.setdefault(int(pid), Worker(int(pid), [], []))
        if phase == "start":
            worker.numbers.append(int(number))
        worker.rss.append(float(rss))
    return list(workers.values())


def run(label: str, tmp: Path, extra: list[str], args: argparse.Namespace) -> Outcome:
    """``harness run`` the study with the probe in a fresh runs dir; read what it recorded."""
    import pandas as pd

    folder = tmp / label.split()[0].strip("()")
    folder.mkdir()
    study = folder / "memory.toml"
    study.write_text(STUDY.format(trials=args.trials, seed=args.seed, epochs=args.epochs))
    probe = folder / "probe.py"
    probe.write_text(PROBE)
    samples = folder / "samples.txt"
    env = {
        **os.environ,
        "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MEMORY_PROBE_FILE": str(samples),
    }
    command = [
        sys.executable, "-m", "harness", "run", str(study), "--runs-dir", str(folder / "runs"),
        "--plugin", str(probe), "--workers", str(args.workers), "--no-progress", *extra,
    ]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{label}: harness run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    table = pd.read_csv(folder / "runs" / "memory" / "trials.csv")
    searched = [c for c in table.columns if c.startswith("model.")]
    return Outcome(
        label=label,
        workers=read_probe(samples),
        wall_s=wall,
        failed=int((table["state"] == "failed").sum()),
        distinct=len(table[searched].drop_duplicates()),
        trials=len(table),
        load=load,
    )


def report(outcome: Outcome) -> None:
    """Per-worker rows, then the run's summary line."""
    print(f"{outcome.label}: {len(outcome.workers)} worker process(es), "
          f"{outcome.wall_s:.1f} s wall, {outcome.trials} trials ({outcome.failed} failed, "
          f"{outcome.distinct} distinct parameter sets), load {outcome.load:.2f} before")
    print(f"  {'pid':>8s} {'trials':>11s} {'first MB':>9s} {'peak MB':>8s} {'growth MB':>10s} "
          f"{'after 1st':>9s}")
    for w in outcome.workers:
        span = f"{min(w.numbers)}-{max(w.numbers)}" if w.numbers else "-"
        print(f"  {w.pid:8d} {span:>11s} {w.rss[0]:9.0f} {max(w.rss):8.0f} {w.growth:10.0f} "
              f"{w.growth_after_first:9.0f}")


def main(argv: list[str] | None = None) -> int:
    """Run the study without and with recycling; print peak RSS, growth and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--recycle-after", type=int, default=10)
    parser.add_argument("--ceiling-mb", type=float,
                        help="also run (c) with study.max_worker_memory_mb at this value")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"digits cnn, {args.trials} trials x {args.epochs} epoch(s), {args.workers} "
          f"worker(s), {os.cpu_count()} CPU cores; load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    modes = [
        ("(a) no recycling", ["--recycle-after", "0"]),
        (f"(b) --recycle-after {args.recycle_after}",
         ["--recycle-after", str(args.recycle_after)]),
    ]
    if args.ceiling_mb:
        modes.append((f"(c) max_worker_memory_mb={args.ceiling_mb:g}",
                      ["--set", f"study.max_worker_memory_mb={args.ceiling_mb:g}"]))
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in modes:
            outcome = run(label, Path(tmp), extra, args)
            report(outcome)
            outcomes.append(outcome)
    print(f"{'run':34s} {'workers':>7s} {'wall s':>7s} {'peak MB':>8s} {'max growth MB':>13s}")
    for o in outcomes:
        print(f"{o.label:34s} {len(o.workers):7d} {o.wall_s:7.1f} {o.peak:8.0f} {o.growth:13.0f}")
    base = outcomes[0]
    for o in outcomes[1:]:
        print(f"ratio of max growth {o.label.split()[0]} / (a): {o.growth / base.growth:.2f}x; "
              f"of peak: {o.peak / base.peak:.2f}x (target: growth < 300 MB per worker)")
    print(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
