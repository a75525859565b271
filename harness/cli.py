"""``harness ...``: the command line. TensorFlow is imported only by commands that train."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from pathlib import Path

from harness.errors import HarnessError

#: Modules adding more subcommands. Each defines ``add_parser(subparsers, add_common)``
#: which adds its parser and sets ``handler`` with ``set_defaults``; a module must not
#: import TensorFlow at import time (``harness --help`` stays fast).
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "harness.serve",
    "harness.report",
    "harness.export",
    "harness.predict",
)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), help="where studies live (default: runs)"
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="add a plugin for this run (dotted module path or .py file); repeatable",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Plugin-based AutoML experiment harness for TensorFlow/Keras.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run or resume a study from a TOML study file")
    run.add_argument("study", type=Path, help="study file (TOML)")
    _add_common(run)
    _add_set(run)
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
        "--backend", choices=("optuna", "kerastuner"), help="override [study].backend"
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

    worker = sub.add_parser(
        "worker",
        help="join a study on shared storage from this machine (run on each machine)",
    )
    worker.add_argument("study", type=Path, help="study file (TOML), the same on every machine")
    _add_common(worker)
    _add_set(worker)
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

    validate = sub.add_parser("validate", help="check a study file and print its search space")
    validate.add_argument("study", type=Path)
    _add_common(validate)
    _add_set(validate)

    show = sub.add_parser("show", help="print a study's trials, best first")
    show.add_argument("target", help="study name (under --runs-dir) or run directory")
    show.add_argument("--top", type=int, help="only the N best trials")
    show.add_argument("--all-columns", action="store_true", help="every metric column too")
    _add_common(show)

    plugins = sub.add_parser("plugins", help="list registered plugins by family")
    _add_common(plugins)
    for module_name in SUBCOMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.add_parser(sub, _add_common)
    return parser


def configure_logging() -> None:
    """Quiet TensorFlow's and Optuna's start-up chatter; keep warnings that matter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    warnings.filterwarnings("ignore", message=".*experimental feature.*")
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    warnings.filterwarnings("ignore", message=".*is deprecated and will be removed.*")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit with code 2."""
    configure_logging()
    args = build_parser().parse_args(argv)
    try:
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        return handler(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _load(args):
    from harness.plugins import load_plugins
    from harness.study import load_study

    plugins = load_plugins(args.plugin)
    return plugins, load_study(args.study, plugins, _assignments(args))


def _assignments(args) -> dict:
    from harness.study import parse_assignment

    return dict(parse_assignment(text) for text in getattr(args, "set", None) or ())


def _add_set(parser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value of the study file, e.g. --set dataset.path=data/mnist "
        "--set train.epochs=3 (TOML values; repeatable)",
    )


def cmd_run(args) -> int:
    """``harness run STUDY``."""
    from harness.orchestrator import RunOptions, run_study

    plugins, spec = _load(args)
    for flag, least in (("trials", 1), ("workers", 1), ("recycle_after", 0)):
        value = getattr(args, flag)
        if value is not None and value < least:
            raise HarnessError(f"--{flag.replace('_', '-')} must be at least {least}, got {value}")
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
        overrides=_assignments(args),
    )
    outcome = run_study(spec, plugins, options)
    print(summary(outcome, outcome.spec))
    if outcome.interrupted:
        print(
            f"stopped; finished trials are saved. Resume with the same command: "
            f"harness run {args.study}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return 0


def cmd_worker(args) -> int:
    """``harness worker STUDY --storage URL``: this machine's workers join a shared study."""
    plugins, spec = _load(args)
    if spec.study.backend == "kerastuner":
        return _kerastuner_worker(args, plugins, spec)
    storage = args.storage or spec.optuna.storage
    if not storage or "://" not in storage:
        raise HarnessError(
            "harness worker joins a study on shared storage: pass --storage "
            "postgresql://USER:PASSWORD@HOST/DB (the same URL on every machine) or set "
            "[optuna].storage"
        )
    return _join_study(args, plugins, spec, storage)


def _kerastuner_worker(args, plugins, spec) -> int:
    """``harness worker`` for a KerasTuner study: this machine's workers ask a running
    chief (KerasTuner's own distributed mode) for trials."""
    import socket

    if args.oracle:
        host, sep, port = args.oracle.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise HarnessError(f"--oracle {args.oracle!r}: expected HOST:PORT, e.g. 10.0.0.5:8000")
        os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"] = host, port
    if not os.environ.get("KERASTUNER_ORACLE_IP") or not os.environ.get("KERASTUNER_ORACLE_PORT"):
        raise HarnessError(
            "harness worker joins a KerasTuner chief: pass --oracle HOST:PORT (the address "
            "the chief's machine was started with: KERASTUNER_ORACLE_IP and "
            "KERASTUNER_ORACLE_PORT set for `harness run STUDY --workers N`)"
        )
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "")
    if not tuner_id or "chief" in tuner_id:
        os.environ["KERASTUNER_TUNER_ID"] = socket.gethostname().replace("chief", "host")
    return _join_study(args, plugins, spec, args.storage)


def _join_study(args, plugins, spec, storage: str | None) -> int:
    """Run this machine's workers of a study that others share (``harness worker``)."""
    from harness.orchestrator import RunOptions, run_study

    options = RunOptions(
        runs_dir=args.runs_dir,
        trials=args.trials,
        workers=args.workers,
        devices=args.devices,
        storage=storage,
        extra_plugins=tuple(args.plugin),
        show_progress=not args.no_progress,
        overrides=_assignments(args),
    )
    outcome = run_study(spec, plugins, options)
    print(summary(outcome, outcome.spec))
    return EXIT_INTERRUPTED if outcome.interrupted else 0


def summary(outcome, spec) -> str:
    """A few lines on how the study went: counts, best value, where the files are."""
    table = outcome.table
    counts = table["state"].value_counts().to_dict() if not table.empty else {}
    parts = [f"{n} {state}" for state, n in sorted(counts.items())]
    lines = [f"study {spec.name}: {', '.join(parts) or 'no trials'}"]
    complete = table[table["state"] == "complete"] if not table.empty else table
    if not complete.empty:
        best = complete.iloc[0]
        values = ", ".join(f"{o.metric}={best[o.metric]:.4f}" for o in spec.objectives)
        lines.append(f"best trial #{int(best['number'])}: {values}")
        baseline = _hand_picked_line(complete, best, spec)
        if baseline:
            lines.append(baseline)
    elif not table.empty:
        reasons = table["fail_reason"].dropna().value_counts()
        if not reasons.empty:
            lines.append(f"every trial failed; most common reason: {reasons.index[0]}")
    lines.append(f"results: {outcome.run_dir}/trials.csv  (harness show {spec.name})")
    lines.append(f"tensorboard --logdir {outcome.run_dir}/tb")
    return "\n".join(lines)


def _hand_picked_line(complete, best, spec) -> str | None:
    """How the best trial compares with the study's first enqueued (hand-picked) trial."""
    if not spec.enqueue or spec.multi_objective or len(complete) < 2:
        return None
    first = complete[complete["number"] == 0]
    if first.empty:
        return None
    if int(best["number"]) == 0:
        return "the hand-picked first trial (#0) is still the best"
    objective = spec.objectives[0]
    picked, found = float(first.iloc[0][objective.metric]), float(best[objective.metric])
    gain = found - picked if objective.direction == "maximize" else picked - found
    return (
        f"hand-picked trial #0: {objective.metric}={_number(picked)}; "
        f"the search's best is better by {_number(gain)}"
    )


def _number(value: float) -> str:
    return f"{value:.4f}" if value == 0 or abs(value) >= 0.01 else f"{value:.3g}"


def cmd_validate(args) -> int:
    """``harness validate STUDY``: no TensorFlow, no training."""
    _, spec = _load(args)
    print(
        f"{args.study}: valid study {spec.name!r} "
        f"({spec.study.backend}, {spec.study.trials} trials)"
    )
    print(f"dataset {spec.dataset.name}, model {spec.model.name}")
    for param in spec.space.params:
        condition = f"  when {param.condition.describe()}" if param.condition else ""
        print(f"  {param.name}: {param.distribution.describe()}{condition}")
    return 0


def cmd_show(args) -> int:
    """``harness show STUDY``: the trial table, best first."""
    import pandas as pd

    from harness.results import read_meta, read_table, resolve_run_dir

    run_dir = resolve_run_dir(args.target, args.runs_dir)
    table = read_table(run_dir)
    meta = read_meta(run_dir)
    if not args.all_columns and meta:
        keep = ["number", "state"]
        keep += [o["metric"] for o in meta.get("objectives", [])]
        keep += [c for c in table.columns if c in meta.get("searched", {})]
        keep += ["duration_s", "device", "fail_reason"]
        table = table[[c for c in keep if c in table.columns]]
    if args.top:
        table = table.head(args.top)
    with pd.option_context(
        "display.max_columns", None, "display.width", 200, "display.max_colwidth", 60
    ):
        print(table.to_string(index=False))
    return 0


def cmd_plugins(args) -> int:
    """``harness plugins``: every registered plugin, by family, with where it comes from."""
    from harness.plugins import load_plugins
    from harness.registry import FAMILIES

    plugins = load_plugins(args.plugin)
    for family in FAMILIES:
        print(f"{family}:")
        for name in plugins.registries[family].names():
            component = plugins.registries[family].components[name]
            print(f"  {name:<22} {component.description}  [{component.source}]")
    print("lifecycle:")
    for plugin_name, impls in _lifecycle(plugins):
        print(f"  {plugin_name:<22} {', '.join(impls)}")
    for message in plugins.broken:
        print(f"broken: {message}")
    return 0


def _lifecycle(plugins):
    hooks = (
        "harness_study_start",
        "harness_trial_start",
        "harness_trial_callbacks",
        "harness_trial_end",
        "harness_study_end",
    )
    found: dict[str, list[str]] = {}
    for hook in hooks:
        for impl in getattr(plugins.pm.hook, hook).get_hookimpls():
            found.setdefault(impl.plugin_name, []).append(hook.removeprefix("harness_"))
    return sorted(found.items())


COMMANDS = {
    "run": cmd_run,
    "worker": cmd_worker,
    "validate": cmd_validate,
    "show": cmd_show,
    "plugins": cmd_plugins,
}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
