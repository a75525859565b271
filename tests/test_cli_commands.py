"""Every command comes from ``harness_register_commands``: the built-in ones in a fixed
order, and a third party's, installed as a real distribution (an entry point) and run
through the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_distribution

from harness.cli import build_parser
from harness.commands import BUILTIN_COMMANDS
from harness.plugins import load_command_plugins

#: ``harness --help``'s commands, in its order.
BUILTIN_ORDER = [
    "run", "worker", "validate", "show", "evaluate", "plugins",
    "tensorboard", "report", "export", "predict", "ensemble",
]

HELLO = '''
import harness
from harness.errors import HarnessError


def hello(args):
    if args.name == "nobody":
        raise HarnessError("hello: nobody to greet; give --name")
    print(f"hello, {args.name} (studies in {args.runs_dir})")
    return args.exit_code


@harness.hookimpl
def harness_register_commands(subparsers, add_common):
    parser = subparsers.add_parser("{command}", help="greet someone (a third-party command)")
    parser.add_argument("--name", default="world", help="who to greet")
    parser.add_argument("--exit-code", type=int, default=0, help="the exit code to return")
    add_common(parser)
    parser.set_defaults(handler=hello)
'''

RAISING = '''
import harness


@harness.hookimpl
def harness_register_commands(subparsers, add_common):
    subparsers.add_parser("half-added", help="added before the hook raised")
    raise RuntimeError("the command plugin breaks on purpose")
'''


HELLO_SOURCE = (
    "plugin 'hello' (entry point hello = thirdparty_hello (distribution hello-plugin 1.2))"
)


def hello_plugin(command: str = "hello") -> str:
    return HELLO.replace("{command}", command)


def harness(site: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m harness ARGS`` with the distributions under ``site`` installed."""
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "100"}
    for name in ("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGINS"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env,
        cwd=site, timeout=120,
    )


def listed_commands(help_text: str) -> list[str]:
    """The command names ``harness --help`` lists, in order."""
    section = help_text.split("COMMAND\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in section.splitlines() if line[4:5].isalpha()]


def test_builtin_commands_are_plugins_on_the_hook_in_help_order(monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS", raising=False)
    plugins = load_command_plugins(BUILTIN_COMMANDS)
    assert [p.name for p in plugins.loaded] == [name for name, _ in BUILTIN_COMMANDS]
    assert plugins.third_party == set()
    (sub,) = [a for a in build_parser()._actions if a.choices and "run" in a.choices]
    assert list(sub.choices) == BUILTIN_ORDER
    # A built-in command is blocked by its plugin's name, like any plugin.
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "report_command")
    (sub,) = [a for a in build_parser()._actions if a.choices and "run" in a.choices]
    assert list(sub.choices) == [name for name in BUILTIN_ORDER if name != "report"]


def test_an_installed_plugin_adds_a_command_that_help_lists_and_the_cli_runs(tmp_path):
    site = make_distribution(tmp_path, "hello-plugin", "thirdparty_hello", hello_plugin(), "hello")
    usage = harness(site, "--help")
    assert usage.returncode == 0, usage.stderr
    assert listed_commands(usage.stdout) == [*BUILTIN_ORDER, "hello"]
    assert "greet someone (a third-party command)" in usage.stdout
    assert usage.stderr == ""
    done = harness(site, "hello", "--name", "Ada", "--runs-dir", "elsewhere", "--exit-code", "3")
    assert (done.returncode, done.stderr) == (3, "")
    assert done.stdout == "hello, Ada (studies in elsewhere)\n"
    done = harness(site, "hello")
    assert (done.returncode, done.stdout) == (0, "hello, world (studies in runs)\n")


def test_a_harness_error_in_a_plugin_command_is_one_error_line_and_exit_2(tmp_path):
    site = make_distribution(tmp_path, "hello-plugin", "thirdparty_hello", hello_plugin(), "hello")
    done = harness(site, "hello", "--name", "nobody")
    assert done.returncode == 2
    assert done.stderr == "error: hello: nobody to greet; give --name\n"
    assert done.stdout == ""


SALUTE_SOURCE = (
    "plugin 'salute' (entry point salute = thirdparty_salute (distribution salute-plugin 1.2))"
)


@pytest.mark.parametrize(
    ("command", "first"),
    [("hello", HELLO_SOURCE), ("show", "plugin 'show_command' (built-in (harness.commands.show))")],
    ids=["two-third-parties", "a-built-in"],
)
def test_two_plugins_adding_one_command_is_one_error_line_naming_both(tmp_path, command, first):
    site = make_distribution(tmp_path, "hello-plugin", "thirdparty_hello", hello_plugin(), "hello")
    make_distribution(site, "salute-plugin", "thirdparty_salute", hello_plugin(command), "salute")
    for args in (["--help"], ["plugins"]):  # no command can be parsed, not even --help
        done = harness(site, *args)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(f"error: command {command!r} is added twice: by ")
        assert first in done.stderr and SALUTE_SOURCE in done.stderr
        assert "Uninstall or block one of them (HARNESS_DISABLE_PLUGINS=" in done.stderr


def test_a_plugin_whose_command_hook_raises_is_one_warning_and_adds_no_command(tmp_path):
    site = make_distribution(tmp_path, "hello-plugin", "thirdparty_hello", hello_plugin(), "hello")
    make_distribution(site, "raising-plugin", "thirdparty_raising", RAISING, "raising")
    usage = harness(site, "--help")
    assert usage.returncode == 0, usage.stderr
    assert usage.stderr == (
        "warning: plugin 'raising' (entry point raising = thirdparty_raising (distribution "
        "raising-plugin 1.2)) raised while adding commands: RuntimeError: the command plugin "
        "breaks on purpose\n"
    )
    assert listed_commands(usage.stdout) == [*BUILTIN_ORDER, "hello"]  # not half-added
    done = harness(site, "hello")
    assert (done.returncode, done.stdout) == (0, "hello, world (studies in runs)\n")
    assert done.stderr.count("\n") == 1


def test_a_plugin_option_cannot_add_a_command(tmp_path):
    """``--plugin`` is loaded after the command line is parsed: too late to add a command."""
    (tmp_path / "hello_file.py").write_text(hello_plugin(), encoding="utf-8")
    done = harness(tmp_path, "hello", "--plugin", "hello_file.py")
    assert done.returncode == 2
    assert "invalid choice: 'hello'" in done.stderr and done.stderr.count("\n") == 1


def test_a_plugin_that_fails_to_import_is_reported_once(tmp_path):
    """Loading the command plugins leaves it out without a word; the command that loads
    every plugin reports it, once."""
    site = make_distribution(tmp_path, "hello-plugin", "thirdparty_hello", hello_plugin(), "hello")
    make_distribution(site, "broken-plugin", "thirdparty_broken", "import no_such_module\n", "bad")
    usage = harness(site, "--help")
    assert (usage.returncode, usage.stderr) == (0, "")
    assert listed_commands(usage.stdout) == [*BUILTIN_ORDER, "hello"]
    done = harness(site, "plugins")
    assert done.returncode == 0
    assert done.stderr.count("\n") == 1 and "'bad' from distribution broken-plugin" in done.stderr


def test_a_plugin_command_without_a_handler_is_one_error_line(tmp_path):
    source = '''
import harness


@harness.hookimpl
def harness_register_commands(subparsers, add_common):
    subparsers.add_parser("idle", help="a command that forgot its handler")
'''
    site = make_distribution(tmp_path, "idle-plugin", "thirdparty_idle", source, "idle")
    done = harness(site, "idle")
    assert done.returncode == 2
    assert done.stderr == (
        "error: harness idle: its plugin set no handler "
        "(parser.set_defaults(handler=...) in harness_register_commands)\n"
    )
