"""``harness validate STUDY``: check a study file and print its search space, without
TensorFlow and without training."""

from __future__ import annotations

from pathlib import Path

import harness
from harness.commands.common import add_study_options, assignments, load_plugins_and_study
from harness.profiles import profile_names
from harness.study import load_study


def add_parser(subparsers, add_common) -> None:
    """``harness validate STUDY [--set KEY=VALUE] [--profile NAME]``."""
    validate = subparsers.add_parser(
        "validate", help="check a study file and print its search space"
    )
    validate.add_argument("study", type=Path, help="study file (TOML) to check")
    add_common(validate)
    add_study_options(validate)
    validate.set_defaults(handler=cmd_validate)


@harness.hookimpl
def harness_register_commands(subparsers, add_common) -> None:
    """Add ``harness validate``."""
    add_parser(subparsers, add_common)


def cmd_validate(args) -> int:
    """``harness validate STUDY``: no TensorFlow, no training."""
    plugins, spec = load_plugins_and_study(args)
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
        variant = load_study(args.study, plugins, assignments(args), name)
        print(f"profile {name}: valid (study {variant.name!r}, {variant.study.trials} trials)")
    return 0
