"""``harness tensorboard STUDY``: serve a study's TensorBoard logs (HParams, scalars).

TensorBoard is started in-process on ``runs/<study>/tb`` and binds to
127.0.0.1 unless ``--host`` says otherwise: the logs name parameters and
metrics, so exposing them to the network is the user's explicit choice.
"""

from __future__ import annotations

import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from harness.errors import HarnessError
from harness.results import resolve_run_dir

DEFAULT_HOST = "127.0.0.1"
#: Seconds between TensorBoard's rescans of the log folder (new trials show up live).
RELOAD_INTERVAL = 5.0


def add_parser(subparsers, add_common) -> None:
    """``harness tensorboard STUDY [--port P] [--host H]``."""
    parser = subparsers.add_parser(
        "tensorboard",
        help="serve a study's TensorBoard (HParams table, learning curves)",
        description=(
            "Start TensorBoard on runs/<study>/tb and print its URL; serves until Ctrl-C. "
            "Binds to 127.0.0.1 unless --host is given (e.g. --host 0.0.0.0 to share it)."
        ),
    )
    parser.add_argument("target", help="study name (under --runs-dir) or run directory")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default: 6006, or the next free one); 0 picks any free port",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST})"
    )
    add_common(parser)
    parser.set_defaults(handler=cmd_tensorboard)


@harness.hookimpl
def harness_register_commands(subparsers, add_common) -> None:
    """Add ``harness tensorboard``."""
    add_parser(subparsers, add_common)


@dataclass
class Served:
    """A running TensorBoard: its URL and a way to stop it."""

    url: str
    server: Any
    logdir: Path

    def stop(self) -> None:
        """Stop serving (the server thread ends; the data-loading helper exits with us)."""
        self.server.shutdown()
        self.server.server_close()


def tensorboard_dir(run_dir: Path) -> Path:
    """``<run_dir>/tb``, or a clear error when the study wrote no TensorBoard logs."""
    logdir = run_dir / "tb"
    if not logdir.is_dir():
        raise HarnessError(
            f"{logdir} does not exist: this study wrote no TensorBoard logs "
            "(was the tensorboard plugin disabled with HARNESS_DISABLE_PLUGINS?)"
        )
    return logdir


def start_tensorboard(
    logdir: Path,
    *,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    reload_interval: float = RELOAD_INTERVAL,
) -> Served:
    """Start TensorBoard on ``logdir`` in a background thread and return its URL.

    ``port=None`` tries 6006 and the next ones, as ``tensorboard`` does;
    ``port=0`` lets the system pick a free port.
    """
    from tensorboard import program  # lazy: keeps tensorboard out of harness --help

    if port is not None and not 0 <= port <= 65535:
        raise HarnessError(f"--port must be between 0 and 65535, got {port}")
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as exc:
        raise HarnessError(f"--host {host!r} cannot be resolved: {exc}") from None
    servers: list[Any] = []
    scanning = program.with_port_scanning(program.WerkzeugServer)

    def make_server(app, flags):
        server = scanning(app, flags)
        servers.append(server)
        return server

    board = program.TensorBoard(server_class=make_server)
    board.configure(logdir=str(logdir), host=host, port=port, reload_interval=reload_interval)
    try:
        url = board.launch()
    except program.TensorBoardServerException as exc:
        raise HarnessError(f"cannot start TensorBoard: {exc.msg}") from None
    except (OSError, SystemExit) as exc:  # werkzeug prints a bind error and exits
        detail = f": {exc}" if isinstance(exc, OSError) else " (see the message above)"
        where = f"{host}:{port if port is not None else 6006}"
        raise HarnessError(f"cannot start TensorBoard on {where}{detail}") from None
    return Served(url=url, server=servers[-1], logdir=logdir)


def cmd_tensorboard(args) -> int:
    """Serve until Ctrl-C, which ends the command normally (exit code 0)."""
    logdir = tensorboard_dir(resolve_run_dir(args.target, args.runs_dir))
    served = start_tensorboard(logdir, host=args.host, port=args.port)
    print(f"TensorBoard for {logdir} at {served.url}  (Ctrl-C to stop)", flush=True)
    print("HParams tab: every trial with its parameters and final metrics", flush=True)
    if args.host not in (DEFAULT_HOST, "localhost", "::1"):
        print(
            f"note: bound to {args.host}; anyone who can reach this address sees the logs",
            file=sys.stderr,
        )
    signal.signal(signal.SIGTERM, _stop_on_signal)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("TensorBoard stopped", file=sys.stderr)
    finally:
        served.stop()
    return 0


def _stop_on_signal(signum, frame):
    """SIGTERM (``kill``, a service manager) stops serving the way Ctrl-C does."""
    raise KeyboardInterrupt
