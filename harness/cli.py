"""``harness ...``: the command line. Every command, built-in or not, is added by a plugin
through ``harness_register_commands`` (:mod:`harness.commands` holds the built-in ones);
TensorFlow is imported only by commands that train."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from harness import __version__
from harness.commands import BUILTIN_COMMANDS
from harness.errors import HarnessError
from harness.logs import configure_logging
from harness.plugins import load_command_plugins
from harness.workers import stop_helper_processes

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


class OneLineParser(argparse.ArgumentParser):
    """argparse with one ``error:`` line (and where the help is) instead of usage + error."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command: the built-in command plugins' and the
    entry-point plugins' (``harness_register_commands``), in that order."""
    parser = OneLineParser(
        prog="harness",
        description="Plugin-based AutoML experiment harness for TensorFlow/Keras.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    load_command_plugins(BUILTIN_COMMANDS).register_commands(sub, _add_common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit with code 2."""
    configure_logging()
    try:
        parser = build_parser()
    except HarnessError as exc:  # two plugins adding one command, say
        return _user_error(exc)
    args = parser.parse_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)
    previous_sigterm = _stop_on_sigterm()
    try:
        handler = getattr(args, "handler", None)
        if handler is None:
            raise HarnessError(
                f"harness {args.command}: its plugin set no handler "
                "(parser.set_defaults(handler=...) in harness_register_commands)"
            )
        return handler(args)
    except HarnessError as exc:
        return _user_error(exc)
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


def _user_error(exc: HarnessError) -> int:
    print(f"error: {one_line(str(exc))}", file=sys.stderr)
    return EXIT_USER_ERROR


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
