"""``harness evaluate STUDY [--top K]``: the best trial(s) measured once on the test split."""

from __future__ import annotations

import harness
from harness.api import evaluate_best
from harness.commands.summary import figures


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
    """Measure the chosen trials' saved models (:func:`harness.api.evaluate_best`, as
    ``harness.evaluate_best`` does) and print their test figures."""
    tested = evaluate_best(args.target, top=args.top, runs_dir=args.runs_dir, plugins=args.plugin)
    if not tested:
        print("nothing was evaluated (see the warnings above)")
        return 1
    for number, metrics in tested.items():
        print(f"trial #{number}: {figures(metrics)}")
    return 0
