"""What the commands that read a study file share: the ``--set`` and ``--profile``
options, loading the plugins and the study they name, and the command that resumes it."""

from __future__ import annotations

from harness.backends import check_backend
from harness.plugins import load_plugins
from harness.program import command
from harness.study import check_data, load_study
from harness.study_source import parse_assignment


def add_study_options(parser) -> None:
    """``--set KEY=VALUE`` (repeatable) and ``--profile NAME``."""
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


def assignments(args) -> dict:
    """The ``--set`` values, by key."""
    return dict(parse_assignment(text) for text in getattr(args, "set", None) or ())


def load_plugins_and_study(args, data_checked: bool = True):
    """Plugins and the validated study, its data checked by the dataset plugin's ``check``
    (before anything is written) unless ``data_checked`` is false."""
    plugins = load_plugins(args.plugin)
    overrides = assignments(args)
    spec = load_study(args.study, plugins, overrides, getattr(args, "profile", None))
    check_backend(spec, overrides)
    if data_checked:
        check_data(spec, overrides)
    return plugins, spec


def resume_command(args) -> str:
    """The command line that was run, every argument kept and shell-quoted, with the
    program as the user started it (:func:`harness.program.program`)."""
    return command(*args.command_line)
