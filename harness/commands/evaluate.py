"""``harness evaluate STUDY [--top K]``: the best trial(s) measured once on the test split."""

from __future__ import annotations

import harness
from harness.commands.summary import figures
from harness.devices import configure_tensorflow
from harness.errors import HarnessError
from harness.evaluate import chosen_trials, evaluate_trials, study_of_run
from harness.quiet import start_tensorflow
from harness.results import resolve_run_dir, write_results
from harness.show import study_table


def add_parser(subparsers, add_common) -> None:
    """``harness evaluate STUDY [--top K]``."""
    evaluate = subparsers.add_parser(
        "evaluate", help="measure the best trial(s) once on the test split"
    )
    evaluate.add_argument("target", help="study name (under --runs-dir) or run directory")
    evaluate.add_argument(
        "--top", type=int, default=1, help="the N best trials (their models must be kept)"
    )
    add_common(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)


@harness.hookimpl
def harness_register_commands(subparsers, add_common) -> None:
    """Add ``harness evaluate``."""
    add_parser(subparsers, add_common)


def cmd_evaluate(args) -> int:
    """Measure the chosen trials' saved models and print their test figures."""
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
        print(f"trial #{number}: {figures(metrics)}")
    return 0
