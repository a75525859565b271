"""``harness ensemble STUDY [--size K] [--method greedy|average]``: one model from the
models a study kept (:mod:`harness.ensemble`)."""

from __future__ import annotations

import harness
from harness.devices import configure_tensorflow
from harness.ensemble import METHODS, build_ensemble, choose_members, summary_lines
from harness.errors import HarnessError
from harness.evaluate import study_of_run
from harness.quiet import start_tensorflow
from harness.results import read_meta, resolve_run_dir


def add_parser(subparsers, add_common) -> None:
    """``harness ensemble STUDY [--size K] [--method greedy|average]``."""
    parser = subparsers.add_parser(
        "ensemble",
        help="combine the study's kept models into one model, weighed on the validation split",
        description=(
            "Weigh the kept trial models (runs/<study>/models/, the [study].keep_models best) "
            "on the validation split by greedy ensemble selection with replacement (or a "
            "plain average), save them as one model (runs/<study>/ensemble.keras, its card "
            "ensemble.json), and measure it once on the test split beside the best single "
            "model."
        ),
    )
    parser.add_argument("target", help="study name (under --runs-dir) or run directory")
    parser.add_argument(
        "--size", type=int, metavar="K",
        help="ensemble the K best kept models (default: every kept model)",
    )
    parser.add_argument(
        "--method", choices=METHODS, default="greedy",
        help="greedy: Caruana's selection with replacement, weights from how often each "
        "model is picked; average: equal weights",
    )
    add_common(parser)
    parser.set_defaults(handler=cmd_ensemble)


@harness.hookimpl
def harness_register_commands(subparsers, add_common) -> None:
    """Add ``harness ensemble``."""
    add_parser(subparsers, add_common)


def cmd_ensemble(args) -> int:
    """Build the ensemble and print its figures beside the best single model's."""
    if args.size is not None and args.size < 1:
        raise HarnessError(f"--size must be at least 1, got {args.size}")
    run_dir = resolve_run_dir(args.target, args.runs_dir)
    choose_members(run_dir, read_meta(run_dir), args.size)  # refuses before TensorFlow starts
    meta, plugins, spec = study_of_run(
        run_dir, args.plugin, "ensemble (its dataset table says where the validation split is)"
    )
    start_tensorflow(configure_tensorflow)
    record = build_ensemble(spec, plugins, run_dir, meta, args.size, args.method)
    for line in summary_lines(record):
        print(line)
    print(f"model: {run_dir / 'ensemble.keras'} (card: {run_dir / 'ensemble.json'})")
    return 0
