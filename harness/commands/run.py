"""``harness run STUDY``: run or resume a study, then print how it went."""

from __future__ import annotations

import sys
from pathlib import Path

import harness
from harness.api import run_with_options
from harness.backends import get_backend
from harness.commands.common import add_study_options, assignments, resume_command
from harness.commands.summary import summary
from harness.orchestrator import (
    STOPPED_AFTER_THE_END,
    STOPPED_BETWEEN_TRIALS,
    STOPPED_TEST_SPLIT,
    STOPPED_TRIAL,
    RunOptions,
)


def add_parser(subparsers, add_common) -> None:
    """``harness run STUDY [--trials N] [--workers N] ...``."""
    run = subparsers.add_parser("run", help="run or resume a study from a TOML study file")
    run.add_argument("study", type=Path, help="study file (TOML)")
    add_common(run)
    add_study_options(run)
    run.add_argument("--trials", type=int, help="total trial budget (finished trials count)")
    run.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    run.add_argument("--seed", type=int, help="sampler and training seed")
    run.add_argument("--workers", type=int, help="worker processes (one per device)")
    run.add_argument("--devices", help="GPUs to use: all (default), cpu, or e.g. 0,1")
    run.add_argument(
        "--storage",
        help="Optuna storage URL (default: journal file in the run dir), or the KerasTuner "
        "project directory (default: RUNS_DIR/STUDY/kerastuner/STUDY)",
    )
    run.add_argument(
        "--backend", help="override [study].backend: optuna, kerastuner or an installed one"
    )
    run.add_argument(
        "--recycle-after", type=int, help="restart a worker after N trials (0: never)"
    )
    run.add_argument(
        "--retry-failed", action="store_true",
        help="run the parameters of failed (e.g. interrupted) trials again",
    )
    run.add_argument(
        "--smoke",
        action="store_true",
        help="one trial, one epoch, a few batches: check a study works end to end",
    )
    run.add_argument("--in-process", action="store_true", help="run trials in this process")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.set_defaults(handler=cmd_run)


@harness.hookimpl
def harness_register_commands(subparsers, add_common) -> None:
    """Add ``harness run``."""
    add_parser(subparsers, add_common)


def cmd_run(args) -> int:
    """``harness run STUDY``: :func:`harness.api.run_with_options`, as ``harness.run``
    runs it, then the summary."""
    options = RunOptions(
        runs_dir=args.runs_dir,
        trials=args.trials,
        timeout=args.timeout,
        seed=args.seed,
        workers=args.workers,
        devices=args.devices,
        storage=args.storage,
        backend=args.backend,
        recycle_after=args.recycle_after,
        retry_failed=args.retry_failed,
        extra_plugins=tuple(args.plugin),
        in_process=args.in_process,
        smoke=args.smoke,
        show_progress=not args.no_progress,
        overrides=assignments(args),
        profile=args.profile,
    )
    outcome = run_with_options(args.study, options)
    print(summary(outcome, outcome.spec))
    if outcome.interrupted:
        print(interrupted_notice(args, outcome.spec, outcome.stopped), file=sys.stderr)
    return outcome.exit_code


def interrupted_notice(args, spec, stopped: str | None = STOPPED_TRIAL) -> str:
    """What Ctrl-C leaves and the command that resumes; ``stopped`` is what it stopped
    (``StudyOutcome.stopped``): a trial, the run between trials, the test split's
    measurement after the trials, or nothing."""
    if stopped == STOPPED_TEST_SPLIT:
        return (
            "stopped while measuring the test split, after every trial had finished: the "
            "trials are saved, the test split was not measured. Measure it by running the "
            f"same command again: {resume_command(args)}"
        )
    if stopped == STOPPED_AFTER_THE_END:
        return "stopped after the study had ended: every trial finished, nothing was lost"
    if stopped == STOPPED_BETWEEN_TRIALS:
        return (
            "stopped between trials; finished trials are saved and no trial was interrupted. "
            f"Resume with: {resume_command(args)}"
        )
    return _trial_interrupted_notice(args, spec)


def _trial_interrupted_notice(args, spec) -> str:
    """Both built-in backends run the interrupted trial again (Optuna as a new trial,
    KerasTuner in place) unless ``[study].max_retries = 0``; a backend that says neither
    (``requeue_interrupted``, ``RERUNS_INTERRUPTED``) does not, so then only
    ``--retry-failed`` runs it again."""
    backend = get_backend(spec)
    reruns = hasattr(backend, "requeue_interrupted") or getattr(
        backend, "RERUNS_INTERRUPTED", False
    )
    if reruns and spec.study.max_retries > 0:
        return (
            "stopped; finished trials are saved and the interrupted one will run again. "
            f"Resume with: {resume_command(args)}"
        )
    command = resume_command(args)
    if not args.retry_failed:
        command += " --retry-failed"
    why = "[study].max_retries = 0" if reruns else "this backend does not re-run trials"
    return (
        f"stopped; finished trials are saved. The interrupted one does not run again by itself "
        f"({why}); --retry-failed runs it again, with any other failed trial. "
        f"Resume with: {command}"
    )
