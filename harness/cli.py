"""``harness ...``: the command line. TensorFlow is imported only by commands that train."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from harness import __version__
from harness.backends import check_backend, get_backend
from harness.devices import configure_tensorflow
from harness.errors import HarnessError
from harness.evaluate import (
    chosen_trials,
    evaluate_trials,
    study_of_run,
    test_examples,
    test_note,
)
from harness.logs import configure_logging
from harness.noise import (
    HandPicked,
    compare_with_hand_picked,
    short_number,
    trial_error,
    with_noise_columns,
    within_noise_of_best,
)
from harness.orchestrator import (
    STOPPED_AFTER_THE_END,
    STOPPED_BETWEEN_TRIALS,
    STOPPED_TEST_SPLIT,
    STOPPED_TRIAL,
    RunOptions,
    apply_options,
    run_study,
    workers_started_early,
)
from harness.plugins import load_plugins
from harness.profiles import profile_names
from harness.program import command, program, sibling
from harness.quiet import start_tensorflow
from harness.registry import FAMILIES
from harness.results import (
    BEST_CARD_FILE,
    FINISHED_STATES,
    counted_mask,
    finished_counted,
    pandas,
    read_ensemble,
    read_meta,
    resolve_run_dir,
    write_results,
)
from harness.show import study_ended, study_table
from harness.study import check_data, load_study
from harness.study_source import parse_assignment
from harness.workers import stop_helper_processes

#: Modules adding more subcommands. Each defines ``add_parser(subparsers, add_common)``
#: which adds its parser and sets ``handler`` with ``set_defaults``; a module must not
#: import TensorFlow at import time (``harness --help`` stays fast).
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "harness.serve",
    "harness.report",
    "harness.export",
    "harness.predict",
    "harness.ensemble_command",
)

EXIT_USER_ERROR = 2
NO_TEST_SPLIT = (
    "no test split in this dataset: the figures above were measured on the data that chose "
    "the model (give the dataset a test split for an unbiased one)"
)
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


class OneLineParser(argparse.ArgumentParser):
    """argparse with one ``error:`` line (and where the help is) instead of usage + error."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = OneLineParser(
        prog="harness",
        description="Plugin-based AutoML experiment harness for TensorFlow/Keras.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
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
    validate.add_argument("study", type=Path, help="study file (TOML) to check")
    _add_common(validate)
    _add_set(validate)

    show = sub.add_parser("show", help="print a study's trials, best first")
    show.add_argument("target", help="study name (under --runs-dir) or run directory")
    show.add_argument("--top", type=int, help="only the N best trials")
    show.add_argument("--all-columns", action="store_true", help="every metric column too")
    show.add_argument(
        "--watch", action="store_true", help="refresh every few seconds until the study ends"
    )
    _add_common(show)

    evaluate = sub.add_parser(
        "evaluate", help="measure the best trial(s) once on the test split"
    )
    evaluate.add_argument("target", help="study name (under --runs-dir) or run directory")
    evaluate.add_argument(
        "--top", type=int, default=1, help="the N best trials (their models must be kept)"
    )
    _add_common(evaluate)

    plugins = sub.add_parser("plugins", help="list registered plugins by family")
    _add_common(plugins)
    for module_name in SUBCOMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.add_parser(sub, _add_common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit with code 2."""
    configure_logging()
    args = build_parser().parse_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)
    previous_sigterm = _stop_on_sigterm()
    try:
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        return handler(args)
    except HarnessError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `harness show x | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk, a read-only folder: the file and the reason
        # os.replace(tmp, target) names both: the target is the file the user knows
        named = exc.filename2 or exc.filename
        where = f"{named}: " if named else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        if "multiprocessing.resource_tracker" in sys.modules:
            stop_helper_processes()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm():
    """Treat SIGTERM (``kill``, ``docker stop``, a batch scheduler's time limit) like
    Ctrl-C: the running trial is marked interrupted, results are written and the resume
    command printed. Returns the handler it replaced (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def one_line(text: str) -> str:
    """A message on one line: control characters that came from the input (a key or a
    value with a newline or a form feed in it) are shown escaped."""
    return "".join(
        char if char.isprintable() else repr(char)[1:-1] for char in text.strip()
    )


def _load(args, data_checked: bool = True):
    """Plugins and the validated study, its data checked by the dataset plugin's ``check``
    (before anything is written) unless ``data_checked`` is false."""
    plugins = load_plugins(args.plugin)
    assignments = _assignments(args)
    spec = load_study(args.study, plugins, assignments, getattr(args, "profile", None))
    check_backend(spec, assignments)
    if data_checked:
        check_data(spec, assignments)
    return plugins, spec


def _assignments(args) -> dict:
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
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="apply the study file's [profiles.NAME] table (e.g. cpu: a CPU-sized variant); "
        "it runs as the study <name>-<NAME>, and --set values still win",
    )


def cmd_run(args) -> int:
    """``harness run STUDY``."""
    plugins, spec = _load(args, data_checked=False)
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
        profile=args.profile,
    )
    apply_options(spec, options)  # flags checked like the file, before anything is written
    with workers_started_early(spec, options) as launcher:
        check_data(spec, options.overrides)
        outcome = run_study(spec, plugins, options, launcher)
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


def resume_command(args) -> str:
    """The command line that was run, every argument kept and shell-quoted, with the
    program as the user started it (:func:`harness.program.program`)."""
    return command(*args.command_line)


def cmd_worker(args) -> int:
    """``harness worker STUDY --storage URL``: this machine's workers join a shared study."""
    plugins, spec = _load(args)
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
        overrides=_assignments(args),
        profile=args.profile,
    )
    apply_options(spec, options)  # flags checked like the file, before anything is written
    outcome = run_study(spec, plugins, options)
    print(summary(outcome, outcome.spec))
    if outcome.interrupted:
        print(f"stopped; join again with: {resume_command(args)}", file=sys.stderr)
    return outcome.exit_code


def summary(outcome, spec) -> str:
    """A few lines on how the study went: counts, best value, test figure, where the files
    are."""
    table = outcome.table
    lines = [f"study {spec.name}: {_counts(table, spec.study.trials)}"]
    complete = table[table["state"] == "complete"] if not table.empty else table
    if not complete.empty:
        best = complete.iloc[0]
        values = ", ".join(f"{o.metric}={best[o.metric]:.4f}" for o in spec.objectives)
        lines.append(f"best trial #{int(best['number'])}: {values}")
        versus = _hand_picked(outcome, spec)
        if versus is not None:
            lines.append(versus.validation_line())
        lines.extend(_test_lines(outcome, spec, versus))
        lines.extend(_ensemble_lines(outcome.run_dir, spec))
    elif not table.empty:
        counted = table[counted_mask(table)]
        failed = counted[counted["state"] == "failed"]
        reasons = failed["fail_reason"].dropna().value_counts()
        if not reasons.empty and len(failed) == len(counted):
            lines.append(f"every trial failed; most common reason: {reasons.index[0]}")
        elif (
            not finished_counted(table).any()
            and spec.study.timeout
            and not getattr(outcome, "interrupted", False)
        ):
            lines.append(
                f"no trial finished: the --timeout of {spec.study.timeout:g} s ended the study "
                "before one could; give it more time"
            )
    words = ["show", spec.name]
    runs_dir = Path(outcome.run_dir).parent
    if runs_dir.resolve() != Path("runs").resolve():
        words += ["--runs-dir", str(runs_dir)]
    show = command(*words)
    lines.append(f"results: {outcome.run_dir}/trials.csv  ({show})")
    lines.append(f"{sibling('tensorboard')} --logdir {outcome.run_dir}/tb")
    return "\n".join(lines)


def _counts(table, budget: int) -> str:
    """``8 of 8 trials finished (5 complete, 2 pruned, 1 failed); 1 interrupted, re-run``."""
    if table.empty:
        return "no trials"
    mine = table[finished_counted(table)]
    states = mine["state"].value_counts().to_dict()
    parts = [f"{states[s]} {s}" for s in FINISHED_STATES if s in states]
    text = f"{len(mine)} of {budget} trials finished ({', '.join(parts) or 'none'})"
    if len(mine) > budget:  # a budget lowered on resume (--trials): it was met already
        text = f"{len(mine)} trials finished, over the budget of {budget} ({', '.join(parts)})"
    skipped = int((table["state"].isin(FINISHED_STATES) & ~counted_mask(table)).sum())
    if skipped:
        text += f"; {skipped} interrupted or replaced, not counted"
    running = int((table["state"] == "running").sum())
    if running:
        text += f"; {running} still running"
    return text


def _test_lines(outcome, spec, versus: HandPicked | None = None) -> list[str]:
    """The test-split figures of the measured trial(s), and whether they are unbiased;
    the hand-picked trial's line says how the best compares with it there."""
    tested = getattr(outcome, "tested", None)
    if not tested:
        return [NO_TEST_SPLIT] if _no_test_split(outcome.run_dir) else []
    split = "test split"
    if getattr(spec, "smoke", False):
        examples = test_examples(outcome.run_dir)
        split = f"smoke-sized test split ({examples} examples; not a real figure)"
    lines = []
    first = versus.best if versus is not None else None
    for number, metrics in sorted(tested.items(), key=lambda item: (item[0] != first, item[0])):
        role = ""
        if versus is not None and versus.gap is not None:
            role = {versus.best: " (best)", versus.picked: " (hand-picked)"}.get(number, "")
        line = f"{split}, trial #{number}{role}: {_figures(metrics)}"
        if role == " (hand-picked)" and versus.test_line():
            line += f"; {versus.test_line()}"
        lines.append(line)
    note = test_note(outcome.run_dir) or ""
    if "optimistic" in note:
        lines.append(f"warning: {note}")
    return lines


def _ensemble_lines(run_dir, spec) -> list[str]:
    """The ensemble ``[study].ensemble`` asked for: members, weights and figures."""
    record = read_ensemble(Path(run_dir)) if spec.study.ensemble else None
    if record is None:
        return []
    from harness.ensemble import summary_lines  # lazy: numpy, only when there is one

    return summary_lines(record)


def _hand_picked(outcome, spec) -> HandPicked | None:
    """How the best trial compares with the best of the study's enqueued (hand-picked)
    trials (the first ``len([[enqueue]])`` trials, and the re-runs of any of them that
    was interrupted), on the validation split and on the test split, with the noise."""
    objectives = [o.model_dump() for o in spec.objectives]
    return compare_with_hand_picked(
        outcome.table, objectives, len(spec.enqueue), test_examples(outcome.run_dir)
    )


def _figures(metrics: dict[str, float]) -> str:
    """``test_accuracy=0.9916, test_loss=0.0397``."""
    return ", ".join(f"{name}={value:.4f}" for name, value in sorted(metrics.items()))


def _no_test_split(run_dir) -> bool:
    """True when the best model's card says its dataset has no test split."""
    try:
        card = json.loads((run_dir / BEST_CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False
    return isinstance(card, dict) and card.get("has_test_split") is False


def cmd_validate(args) -> int:
    """``harness validate STUDY``: no TensorFlow, no training."""
    plugins, spec = _load(args)
    print(
        f"{args.study}: valid study {spec.name!r} "
        f"({spec.study.backend}, {spec.study.trials} trials)"
    )
    print(f"dataset {spec.dataset.name}, model {spec.model.name}")
    for param in spec.space.params:
        condition = f"  when {param.condition.describe()}" if param.condition else ""
        print(f"  {param.name}: {param.distribution.describe()}{condition}")
    from harness.split_summary import split_lines  # lazy: only validate prints it

    lines = split_lines(spec)
    if lines:
        print(f"data (seed {spec.study.seed or 0}):")
        for line in lines:
            print(f"  {line}")
    others = [name for name in profile_names(spec.raw) if name != spec.profile]
    for name in others:  # each declared profile must load too
        variant = load_study(args.study, plugins, _assignments(args), name)
        print(f"profile {name}: valid (study {variant.name!r}, {variant.study.trials} trials)")
    return 0


def cmd_show(args) -> int:
    """``harness show STUDY``: the trial table, best first, read from the study's storage
    (so it is current while the study runs, on this machine or another)."""
    if args.top is not None and args.top < 1:
        raise HarnessError(f"--top must be at least 1, got {args.top}")
    run_dir = resolve_run_dir(args.target, args.runs_dir)
    if not args.watch:
        print(_show_text(run_dir, study_table(run_dir), args))
        return 0
    while True:
        table = study_table(run_dir)
        if sys.stdout.isatty():
            print("\x1b[2J\x1b[H", end="")
        print(_show_text(run_dir, table, args), flush=True)
        if study_ended(run_dir, table):
            budget = int(read_meta(run_dir).get("trials") or 0)
            if int(finished_counted(table).sum()) < budget:
                print(
                    "no harness run is running this study now; run its command again to "
                    "resume it",
                    file=sys.stderr,
                )
            return 0
        time.sleep(2.0)


def _show_text(run_dir, table, args) -> str:
    meta = read_meta(run_dir)
    header = f"study {meta.get('name', run_dir.name)}: {_counts(table, meta.get('trials', 0))}"
    header += "".join(f"\n{line}" for line in _noise_lines(table, meta))
    table = with_noise_columns(table, meta.get("objectives", []), meta.get("enqueued"))
    if not args.all_columns and meta:
        keep = ["number", "state", "hand_picked"]
        for objective in meta.get("objectives", []):  # with folds: the spread beside the mean
            metric = objective["metric"]
            keep += [metric, f"{metric}_std", f"{metric}_se"]
        keep += ["folds"]
        keep += [c for c in table.columns if str(c).startswith("test_")]
        keep += [c for c in table.columns if c in meta.get("searched", {})]
        keep += ["duration_s", "device", "retry_of", "fail_reason"]
        table = table[[c for c in keep if c in table.columns]]
        if "retry_of" in table and table["retry_of"].isna().all():
            table = table.drop(columns="retry_of")
    if args.top:
        table = table.head(args.top)
    table = _with_ensemble_row(table, read_ensemble(run_dir), meta)
    table = _whole_numbers_as_ints(table, [*meta.get("searched", {}), "retry_of", "folds"])
    with pandas().option_context(
        "display.max_columns", None, "display.width", 200, "display.max_colwidth", 60
    ):
        body = table.to_string(index=False) if not table.empty else "(no trials yet)"
    return f"{header}\n{body}"


def _noise_lines(table, meta) -> list[str]:
    """Under ``show``'s header: the trials whose gap to the best is noise, and how the best
    compares with the hand-picked trial."""
    objectives = meta.get("objectives", [])
    if len(objectives) != 1 or table.empty:
        return []
    lines = []
    close = within_noise_of_best(table, objectives[0])
    if close is not None:
        best = table[table["state"] == "complete"].iloc[0]
        error = short_number(trial_error(best, objectives[0]["metric"]))
        trials = ", ".join(f"#{n}" for n in close) or "none"
        lines.append(
            f"within noise of the best, #{int(best['number'])} (gap under two standard "
            f"errors; its own is {error}): {trials}"
        )
    versus = compare_with_hand_picked(table, objectives, int(meta.get("enqueued") or 0))
    if versus is not None:
        lines.append(versus.validation_line())
    return lines


def _with_ensemble_row(table, record, meta):
    """The table with the study's ensemble (``harness ensemble``) as a last row of its own:
    its validation and test figures in the trials' columns, its members as its state."""
    if record is None or table.empty:
        return table
    pd = pandas()
    members = "+".join(f"#{m['trial']}" for m in record["members"] if m["weight"] > 0)
    row: dict = {"number": "ensemble", "state": members}
    for objective in meta.get("objectives", []):
        row[objective["metric"]] = record["validation"].get(
            objective["metric"].removeprefix("val_")
        )
    for name, value in ((record.get("test") or {}).get("ensemble") or {}).items():
        if f"test_{name}" in table.columns:
            row[f"test_{name}"] = value
    return pd.concat([table.astype({"number": object}), pd.DataFrame([row])], ignore_index=True)


def _whole_numbers_as_ints(table, columns):
    """Parameter columns of whole numbers print as ints (``16``, not ``16.0``) even when a
    waiting or failed row leaves a gap (pandas then holds them as floats)."""
    pd = pandas()
    table = table.copy()
    for column in columns:
        if column not in table.columns or not pd.api.types.is_float_dtype(table[column]):
            continue
        known = table[column].dropna()
        if not known.empty and (known == known.round()).all() and (known.abs() < 2**53).all():
            table[column] = table[column].astype("Int64")
    return table


def cmd_evaluate(args) -> int:
    """``harness evaluate STUDY [--top K]``: the best trial(s) measured on the test split."""
    if args.top < 1:
        raise HarnessError(f"--top must be at least 1, got {args.top}")
    run_dir = resolve_run_dir(args.target, args.runs_dir)
    meta, plugins, spec = study_of_run(
        run_dir, args.plugin, "evaluate (its dataset table says where the test split is)"
    )
    table = study_table(run_dir)
    numbers = chosen_trials(table, meta.get("objectives", []), args.top, len(spec.enqueue))
    if not numbers:
        raise HarnessError(f"{run_dir}: no complete trial to evaluate yet")
    start_tensorflow(configure_tensorflow)
    tested = evaluate_trials(spec, plugins, run_dir, numbers)
    write_results(run_dir, study_table(run_dir), meta.get("objectives", []))
    if not tested:
        print("nothing was evaluated (see the warnings above)")
        return 1
    for number, metrics in sorted(tested.items()):
        print(f"trial #{number}: {_figures(metrics)}")
    return 0


def cmd_plugins(args) -> int:
    """``harness plugins``: every registered plugin, by family, with where it comes from."""
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
        "harness_test_evaluated",
        "harness_ensemble_built",
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
    "evaluate": cmd_evaluate,
    "plugins": cmd_plugins,
}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
