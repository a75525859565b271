"""Benchmark: trials per hour on GPUs: 1 worker, one worker per GPU, two workers sharing
one GPU, and the GPU-only train options (mixed precision, XLA) against plain float32.

Each configuration runs ``harness run`` on the quickstart's CNN study (scikit-learn's
digits, offline; or any ``--study``) in a fresh runs directory, with the same seed and
the same amount of training (pruner off, every trial exactly ``--epochs`` epochs; see
bench/workers_throughput.py, whose runner this reuses), and prints:

* trials per hour, start-up included, and the ratio to 1 worker on 1 GPU;
* per-GPU efficiency: (trials/h with N GPUs) / (N x trials/h with 1 GPU), 100% being
  perfectly linear; for two workers on one GPU, how much a second process adds;
* ``train.mixed_precision = true`` and ``train.jit_compile = true`` (1 worker) against
  float32 without XLA.

Without a GPU (``nvidia-smi -L`` lists none, or ``HARNESS_GPUS=""``) it says so and
measures nothing: on a CPU these options are ignored with a notice, and worker scaling
on CPU cores is bench/workers_throughput.py's job.

Run: ``python bench/gpu_workers.py [--trials 8] [--epochs 3] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STUDY = REPO / "studies" / "quickstart.toml"


def _throughput_module():
    """bench/workers_throughput.py, imported by path (bench/ is not a package)."""
    path = Path(__file__).with_name("workers_throughput.py")
    spec = importlib.util.spec_from_file_location("workers_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def configurations(gpus: list[str]) -> list[tuple[str, int, tuple[str, ...]]]:
    """(label, workers, extra ``harness run`` arguments) of every configuration measured;
    the first is the baseline."""
    one = ("--devices", gpus[0])
    found = [
        ("1 worker, 1 GPU", 1, one),
        ("2 workers sharing 1 GPU", 2, one),
        ("1 worker, mixed precision", 1, (*one, "--set", "train.mixed_precision=true")),
        ("1 worker, XLA", 1, (*one, "--set", "train.jit_compile=true")),
    ]
    if len(gpus) > 1:
        found.insert(1, (f"{len(gpus)} workers, one per GPU", len(gpus), ("--devices", "all")))
    return found


def main(argv: list[str] | None = None) -> int:
    """Run every configuration ``--repeat`` times, interleaved, and print the table."""
    from harness.devices import discover_gpus

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", type=Path, default=DEFAULT_STUDY)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    gpus = discover_gpus()
    if not gpus:
        print("no GPU on this machine (nvidia-smi lists none): nothing measured. "
              "Run this on a GPU machine; bench/workers_throughput.py measures CPU workers.")
        return 0
    throughput = _throughput_module()
    measured: dict[str, list] = {}
    plan = configurations(gpus)
    print(f"study {args.study.name}: {args.trials} trials x {args.epochs} epochs, "
          f"GPUs {', '.join(gpus)}, {args.repeat} interleaved rounds")
    for round_ in range(args.repeat):
        for label, workers, extra in plan if round_ % 2 == 0 else plan[::-1]:
            run = throughput.run_study(
                args.study, workers, args.trials, args.epochs, args.seed, extra
            )
            measured.setdefault(label, []).append(run)
            print(f"  round {round_ + 1}, {label}: {run.wall_s:.1f} s, "
                  f"{run.per_hour:.0f} trials/h, mean trial {run.mean_trial_s:.2f} s")
    base_label = plan[0][0]
    base = statistics.median(r.per_hour for r in measured[base_label])
    print(f"{'configuration':32s} {'trials/h':>9s} {'vs 1 GPU':>9s} {'per-GPU eff.':>12s}")
    for label, workers, extra in plan:
        rate = statistics.median(r.per_hour for r in measured[label])
        gpus_used = workers if "--devices" in extra and "all" in extra else 1
        efficiency = rate / (gpus_used * base)
        print(f"{label:32s} {rate:9.0f} {rate / base:8.2f}x {efficiency:11.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
