"""KerasTuner's chief/worker mode: the worker slots, each process's role read from
KerasTuner's environment variables, and the chief serving the oracle over gRPC.

``KERASTUNER_TUNER_ID=chief`` serves the oracle to the workers and trains nothing;
``tuner<N>`` pulls trials from the chief at ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT``; without those variables a process owns the oracle.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import time
from concurrent import futures
from dataclasses import replace
from pathlib import Path

import grpc

from harness.backends.kerastuner.config import config
from harness.backends.kerastuner.store import (
    CHIEF_DONE_FILE,
    FINISHED,
    HOST,
    _read_json,
    _record_path,
    _write_json,
    runs_again,
)
from harness.devices import WorkerSlot
from harness.errors import HarnessError

LOOPBACK = "127.0.0.1"
#: Seconds the chief keeps answering once the search is over (a worker may be mid-request).
CHIEF_GRACE_S = 2.0


def join_storage(spec, storage: str | None, oracle: str | None) -> str | None:
    """``harness worker`` for a KerasTuner study: this machine's workers ask a running chief
    (KerasTuner's own distributed mode) for trials, at ``oracle`` (HOST:PORT) or the
    address in ``KERASTUNER_ORACLE_IP``/``KERASTUNER_ORACLE_PORT``; the project folder is
    ``storage`` (default: the study's own)."""
    if oracle:
        host, sep, port = oracle.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise HarnessError(f"--oracle {oracle!r}: expected HOST:PORT, e.g. 10.0.0.5:8000")
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
    return storage


def distributed_slots(spec, slots: list) -> list:
    """KerasTuner's chief/worker mode for ``--workers N > 1`` (or ``[kerastuner].distributed``).

    Adds a chief slot (``KERASTUNER_TUNER_ID=chief``: it runs the oracle as a gRPC
    service and trains nothing, on the CPU) and gives the N workers ``tuner0``,
    ``tuner1``, ... All point at ``KERASTUNER_ORACLE_IP`` (loopback unless set in the
    environment) and ``KERASTUNER_ORACLE_PORT`` (a free port unless set). When the
    environment already names a worker (``KERASTUNER_TUNER_ID`` without "chief", plus
    IP and port), no chief is started: this machine's workers join that chief.
    """
    if _joining():  # KERASTUNER_* set by the user: these workers join that chief
        base = os.environ["KERASTUNER_TUNER_ID"]
        if len(slots) < 2:
            return slots
        return [
            replace(slot, env={**slot.env, "KERASTUNER_TUNER_ID": f"{base}-{index}"})
            for index, slot in enumerate(slots)
        ]
    if len(slots) < 2 and not config(spec).distributed:
        return slots
    ip = os.environ.get("KERASTUNER_ORACLE_IP", LOOPBACK)
    port = os.environ.get("KERASTUNER_ORACLE_PORT") or str(_free_port(ip))
    oracle_env = {"KERASTUNER_ORACLE_IP": ip, "KERASTUNER_ORACLE_PORT": port}
    chief_env = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "HARNESS_THREADS": "1"}
    chief = WorkerSlot("chief", "cpu", {**chief_env, **oracle_env, "KERASTUNER_TUNER_ID": "chief"})
    workers = [
        replace(slot, env={**slot.env, **oracle_env, "KERASTUNER_TUNER_ID": f"tuner{index}"})
        for index, slot in enumerate(slots)
    ]
    return [chief, *workers]


def _free_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def _joining() -> bool:
    """True when the environment names a KerasTuner worker: join an existing chief."""
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "")
    return "KERASTUNER_ORACLE_IP" in os.environ and bool(tuner_id) and "chief" not in tuner_id


def _oracle_address() -> str:
    return f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"


def _role() -> str:
    """``local`` (no chief), ``chief`` or ``worker``, from KerasTuner's environment variables."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "local"
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if v not in os.environ]
    if missing:
        raise HarnessError(
            f"KERASTUNER_ORACLE_IP is set but {' and '.join(missing)} is not; set them for "
            "KerasTuner's chief/worker mode or unset KERASTUNER_ORACLE_IP"
        )
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


class _Quiet:
    """Silences KerasTuner's stray prints (``Parent.to_proto``) around oracle-client calls."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            with contextlib.redirect_stdout(io.StringIO()):
                return attr(*args, **kwargs)

        return call


def _serve(
    tuner, project: Path, budget: int, deadline: float | None, max_retries: int
) -> None:
    """The chief: serve the oracle over gRPC until the search is over and no trial runs.

    KerasTuner's own ``oracle_chief.start_server`` waits until every worker that
    ever asked has heard STOPPED; a worker that was recycled, or that stopped at the
    budget or the deadline, never does, so this loop ends on those too. Before it
    stops serving it writes ``harness_chief_done.json`` (workers check it before
    asking for a trial) and keeps answering for a few seconds, so no worker is left
    waiting on a chief that is gone.
    """
    # The chief's gRPC service: keras_tuner (TensorFlow) loads only in the chief.
    from keras_tuner.src import protos  # lazy: keras_tuner imports TensorFlow
    from keras_tuner.src.distribute import oracle_chief  # lazy: imports TensorFlow

    oracle = tuner.oracle
    tuner.save()
    address = _oracle_address()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise HarnessError(
            f"the KerasTuner chief cannot listen on {address} (in use?); "
            "set KERASTUNER_ORACLE_PORT to a free port"
        )
    server.start()
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            while True:
                time.sleep(0.5)
                over = (
                    servicer.stop_triggered
                    or oracle.harness_stop is not None
                    # every trial id is given out, and none waits for a re-run
                    or (len(oracle.trials) >= budget and not oracle._retry_queue)
                    or (deadline is not None and time.time() >= deadline)
                )
                if over and not _awaited(oracle, project, max_retries):
                    break
            _write_json(project / CHIEF_DONE_FILE, {"pid": os.getpid(), "host": HOST})
            time.sleep(CHIEF_GRACE_S)
    finally:
        server.stop(grace=1)


def _awaited(oracle, project: Path, max_retries: int) -> bool:
    """Whether a trial the oracle still holds as ongoing may yet report to it. One whose
    record is final (its worker ended it, or died with its re-runs spent, and will not be
    restarted) never will, and the chief must not wait for it."""
    for trial in oracle.ongoing_trials.values():
        record = _read_json(_record_path(project, trial.trial_id))
        if record.get("state") in FINISHED and not runs_again(record, max_retries):
            continue
        return True
    return False
