"""``harness worker STUDY --storage URL``: this machine's workers join a shared study."""

from __future__ import annotations

import sys
from pathlib import Path

import harness
from harness.backends import get_backend
from harness.commands.common import (
    add_study_options,
    assignments,
    load_plugins_and_study,
    resume_command,
)
from harness.commands.summary import summary
from harness.errors import HarnessError
from harness.orchestrator import RunOptions, apply_options, run_study
from harness.program import program


def add_parser(subparsers, add_common) -> None:
    """``harness worker STUDY [--storage URL] [--oracle HOST:PORT] ...``."""
    worker = subparsers.add_parser(
        "worker",
        help="join a study on shared storage from this machine (run on each machine)",
    )
    worker.add_argument("study", type=Path, help="study file (TOML), the same on every machine")
    add_common(worker)
    add_study_options(worker)
    worker.add_argument("--storage", help="shared storage URL, e.g. postgresql://user@host/db")
    worker.add_argument(
        "--oracle",
        metavar="HOST:PORT",
        help="backend kerastuner: the chief's address (sets KERASTUNER_ORACLE_IP/PORT)",
    )
    worker.add_argument("--workers", type=int, help="worker processes on this machine")
    worker.add_argument("--devices", help="GPUs to use: all (default), cpu, or e.g. 0,1")
    worker.add_argument("--trials", type=int, help="total trial budget of the shared study")
    worker.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    worker.set_defaults(handler=cmd_worker)


@harness.hookimpl
def harness_register_commands(subparsers, add_common) -> None:
    """Add ``harness worker``."""
    add_parser(subparsers, add_common)


def cmd_worker(args) -> int:
    """``harness worker STUDY --storage URL``: this machine's workers join a shared study."""
    plugins, spec = load_plugins_and_study(args)
    join = getattr(get_backend(spec), "join_storage", None)
    if join is None:
        raise HarnessError(
            f"the {spec.study.backend!r} backend cannot join a study from another machine "
            f"(it has no join_storage); run the study with {program()} run"
        )
    return _join_study(args, plugins, spec, join(spec, args.storage, args.oracle))


def _join_study(args, plugins, spec, storage: str | None) -> int:
    """Run this machine's workers of a study that others share (``harness worker``)."""
    options = RunOptions(
        runs_dir=args.runs_dir,
        trials=args.trials,
        workers=args.workers,
        devices=args.devices,
        storage=storage,
        extra_plugins=tuple(args.plugin),
        show_progress=not args.no_progress,
        overrides=assignments(args),
        profile=args.profile,
    )
    apply_options(spec, options)  # flags checked like the file, before anything is written
    outcome = run_study(spec, plugins, options)
    print(summary(outcome, outcome.spec))
    if outcome.interrupted:
        print(f"stopped; join again with: {resume_command(args)}", file=sys.stderr)
    return outcome.exit_code
