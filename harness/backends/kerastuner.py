"""KerasTuner backend: random, bayesian, hyperband and grid oracles; trials run through
:func:`harness.trial.run_trial`.

KerasTuner only proposes hyperparameters and receives results: a
:class:`keras_tuner.engine.base_tuner.BaseTuner` subclass overrides ``run_trial``
to call the harness's one trial runner, so data, model building, fitting,
callbacks, TensorBoard and the results table are the same as with Optuna.

The study's search space is declared once (``harness.space``) and translated
into ``keras_tuner.HyperParameters``: ``int`` -> ``hp.Int`` (step, or
``sampling="log"``), ``float`` -> ``hp.Float``, ``choice`` -> ``hp.Choice``;
a ``when`` condition becomes ``hp.conditional_scope(parent, values)``, where
``values`` are the parent's values for which the condition holds (``==`` and
``in`` directly; other operators enumerate the parent's choice or int domain).

Files (``runs/<study>/kerastuner/<study>`` unless ``--storage`` names another
directory) are KerasTuner's own project (``oracle.json``, ``tuner0.json``,
``trial_<id>/trial.json``), with the harness's per-trial record next to each
trial (``trial_<id>/harness.json``), the tuner the project was created with
(``harness_project.json``) and, when the oracle ended the search before the
budget, ``harness_stopped.json``.

Nothing here imports TensorFlow (nor ``keras_tuner``, which imports it) until
``run_worker`` runs: the orchestrating process stays light.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.backends.base import better
from harness.context import StudyContext, TrialContext
from harness.devices import process_alive
from harness.errors import HarnessError, StudyFileError
from harness.space import (
    ChoiceDistribution,
    Condition,
    FloatDistribution,
    IntDistribution,
    SearchParam,
    SearchSpace,
)

log = logging.getLogger(__name__)

HOST = socket.gethostname()
PROJECTS_DIR = "kerastuner"
RECORD_FILE = "harness.json"
PROJECT_FILE = "harness_project.json"
STOPPED_FILE = "harness_stopped.json"
CHIEF_DONE_FILE = "harness_chief_done.json"
BEST_LOCK = ".harness_best.lock"
LOOPBACK = "127.0.0.1"
EPOCHS = "train.epochs"
#: Largest int domain enumerated to express a condition such as ``layers >= 2``.
MAX_ENUMERATED = 10_000
#: Seconds the chief keeps answering once the search is over (a worker may be mid-request).
CHIEF_GRACE_S = 2.0
FINISHED = ("complete", "pruned", "failed")
_STATES = {"COMPLETED": "complete", "FAILED": "failed", "INVALID": "failed", "RUNNING": "running"}


# --------------------------------------------------------------------------- search space


@dataclass(frozen=True)
class KerasTunerSpace:
    """The study's space as KerasTuner sees it.

    ``space`` is what KerasTuner samples (under Hyperband without ``train.epochs``,
    which Hyperband controls); ``scopes`` maps every parameter that can be active to
    its conditional scopes, outermost first, as ``(parent, allowed parent values)``.
    """

    space: SearchSpace
    scopes: dict[str, tuple[tuple[str, tuple[Any, ...]], ...]]
    searched: tuple[str, ...]
    max_epochs: int | None = None


def _where(name: str) -> str:
    table, _, key = name.rpartition(".")
    return f"[{table}].{key}" if table else name


def check_spec(spec) -> None:
    """Raise :class:`StudyFileError` if KerasTuner cannot run this study as written."""
    if spec.multi_objective:
        raise StudyFileError(
            "[study].objective: the kerastuner backend optimizes one objective, got "
            f"{[o.metric for o in spec.objectives]}; name one metric or use backend = 'optuna'"
        )
    translate(spec)


def translate(spec) -> KerasTunerSpace:
    """Check and translate the study's search space for KerasTuner (see the module doc)."""
    tuner = spec.kerastuner.tuner
    params = list(spec.space.params)
    literals = dict(spec.space.literals)
    max_epochs = None
    if tuner == "hyperband":
        max_epochs = _max_epochs(spec)
        for param in params:
            if param.condition is not None and param.condition.param == EPOCHS:
                raise StudyFileError(
                    f"{_where(param.name)}.when: under tuner = 'hyperband' KerasTuner sets "
                    f"{EPOCHS} itself, so no parameter can depend on it"
                )
        params = [p for p in params if p.name != EPOCHS]
        literals[EPOCHS] = max_epochs
    by_name = {param.name: param for param in params}
    scopes: dict[str, tuple[tuple[str, tuple[Any, ...]], ...]] = {}
    for param in params:
        _check_choice(param)
        chain = _scope_chain(param, by_name, literals, scopes)
        if chain is not None:
            scopes[param.name] = chain
    if tuner == "grid":
        _check_grid([p for p in params if p.name in scopes])
    return KerasTunerSpace(
        SearchSpace(params, literals), scopes, tuple(spec.space.searched_names()), max_epochs
    )


def _max_epochs(spec) -> int:
    """Hyperband's ``max_epochs``: the upper bound of ``train.epochs`` (or its value)."""
    param = spec.space.get(EPOCHS)
    if param is None:
        from harness.study import TrainParams

        return int(spec.space.literals.get(EPOCHS, TrainParams().epochs))
    dist = param.distribution
    if isinstance(dist, ChoiceDistribution):
        return int(max(dist.choices))
    return int(dist.high)


def _check_choice(param: SearchParam) -> None:
    dist = param.distribution
    if isinstance(dist, ChoiceDistribution) and len({type(c) for c in dist.choices}) > 1:
        raise StudyFileError(
            f"{_where(param.name)}.choice: KerasTuner's hp.Choice needs values of one type, "
            f"got {list(dist.choices)}; write them all as strings, ints or floats"
        )


def _check_grid(params: list[SearchParam]) -> None:
    for param in params:
        dist = param.distribution
        if isinstance(dist, ChoiceDistribution):
            continue
        if isinstance(dist, IntDistribution) and not dist.log:
            continue
        raise StudyFileError(
            f"{_where(param.name)}: tuner = 'grid' needs every searched parameter to be a choice "
            f"or an int with a step (not log); {param.name} is {dist.describe()}. Make it a "
            f"choice, e.g. {{choice = [{dist.low}, {dist.high}]}}, or use tuner = 'random'"
        )


def _scope_chain(param, by_name, literals, scopes):
    """Conditional scopes of ``param``, or None when it can never be active."""
    condition = param.condition
    if condition is None:
        return ()
    if condition.param not in by_name:  # a literal: the condition is fixed
        return () if condition.holds(literals) else None
    parent = by_name[condition.param]
    if parent.name not in scopes:  # the parent itself is never active
        return None
    allowed = _allowed_values(param, condition, parent)
    if not allowed:
        return None
    return (*scopes[parent.name], (parent.name, tuple(allowed)))


def _allowed_values(param: SearchParam, condition: Condition, parent: SearchParam) -> list[Any]:
    """The parent's values for which ``condition`` holds (KerasTuner's conditions are lists)."""
    dist = parent.distribution
    wanted = [condition.value] if condition.op == "==" else condition.value
    if isinstance(dist, ChoiceDistribution):
        domain = list(dist.choices)
    elif isinstance(dist, IntDistribution):
        step = 1 if dist.log else dist.step
        if (dist.high - dist.low) // step + 1 <= MAX_ENUMERATED:
            domain = list(range(dist.low, dist.high + 1, step))
        elif condition.op in ("==", "in"):
            domain = [v for v in wanted if isinstance(v, int) and dist.low <= v <= dist.high]
        else:
            raise StudyFileError(
                f"{_where(param.name)}.when: {parent.name} has too many values to express "
                f"'{condition.describe()}' for KerasTuner; use == or in, or give it a step"
            )
    elif isinstance(dist, FloatDistribution) and condition.op in ("==", "in"):
        numbers = [v for v in wanted if isinstance(v, int | float) and not isinstance(v, bool)]
        domain = [float(v) for v in numbers]
    else:
        raise StudyFileError(
            f"{_where(param.name)}.when: KerasTuner can make a parameter depend on a float "
            f"parameter only with == or in, not '{condition.describe()}'; make "
            f"{parent.name} a choice or an int"
        )
    return [value for value in domain if condition.holds({condition.param: value})]


class HyperParametersSuggester:
    """Adapts ``keras_tuner.HyperParameters`` to :class:`harness.space.Suggester`.

    Each parameter is declared inside the conditional scopes that mirror its
    ``when``, so KerasTuner knows which parameters are active in which trial.
    """

    def __init__(self, hp: Any, scopes: dict[str, tuple[tuple[str, tuple[Any, ...]], ...]]):
        self.hp = hp
        self.scopes = scopes

    def _get(self, name: str, declare):
        if name not in self.scopes:
            raise HarnessError(f"{name}: asked for a parameter KerasTuner never activates")
        with contextlib.ExitStack() as stack:
            for parent, values in self.scopes[name]:
                stack.enter_context(self.hp.conditional_scope(parent, list(values)))
            return declare()

    def suggest_int(self, name, low, high, *, step=1, log=False):
        return self._get(
            name,
            lambda: self.hp.Int(
                name, low, high, step=None if log else step, sampling="log" if log else "linear"
            ),
        )

    def suggest_float(self, name, low, high, *, step=None, log=False):
        return self._get(
            name,
            lambda: self.hp.Float(name, low, high, step=step, sampling="log" if log else "linear"),
        )

    def suggest_categorical(self, name, choices):
        return self._get(name, lambda: self.hp.Choice(name, list(choices)))


def declare_space(kt_space: KerasTunerSpace, hp: Any = None) -> Any:
    """A ``keras_tuner.HyperParameters`` holding every parameter that can be active."""
    if hp is None:
        import keras_tuner

        hp = keras_tuner.HyperParameters()
    suggester = HyperParametersSuggester(hp, kt_space.scopes)
    for param in kt_space.space.params:
        if param.name in kt_space.scopes:
            param.distribution.suggest(param.name, suggester)
    return hp


def sample_params(kt_space: KerasTunerSpace, hp: Any) -> dict[str, Any]:
    """A trial's resolved parameters (literals included) from its KerasTuner values."""
    params = kt_space.space.sample(HyperParametersSuggester(hp, kt_space.scopes))
    missing = [k for k, v in params.items() if v is None and k in kt_space.scopes]
    if missing:
        raise HarnessError(f"KerasTuner gave no value for {', '.join(missing)}")
    if "tuner/epochs" in hp.values:  # Hyperband decides how long this trial trains
        params[EPOCHS] = int(hp.values["tuner/epochs"])
    return params


# --------------------------------------------------------------------------- files


def project_path(spec, run_dir: Path, override: str | None = None) -> Path:
    """The KerasTuner project directory: ``--storage`` or ``runs/<study>/kerastuner/<study>``."""
    if override:
        if "://" in override:
            raise HarnessError(
                f"--storage {override}: the kerastuner backend keeps its project in a "
                "directory; give a path (a shared filesystem for several machines)"
            )
        return Path(override)
    return run_dir / PROJECTS_DIR / spec.name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _record_path(project: Path, trial_id: str) -> Path:
    return project / f"trial_{trial_id}" / RECORD_FILE


def _stored_records(project: Path, spec=None) -> list[dict[str, Any]]:
    """Every trial's record: ours (``harness.json``), else one read from ``trial.json``."""
    found = []
    for trial_dir in sorted(project.glob("trial_*")):
        record = _read_json(trial_dir / RECORD_FILE)
        if not record and spec is not None:
            record = _record_from_kerastuner(trial_dir / "trial.json", spec)
        if record:
            found.append(record)
    return sorted(found, key=lambda r: r["number"])


def _record_from_kerastuner(path: Path, spec) -> dict[str, Any]:
    """A trial that never reached the harness's runner (or whose record is missing)."""
    trial = _read_json(path)
    state = _STATES.get(trial.get("status"))
    if state is None or not str(trial.get("trial_id", "")).isdigit():
        return {}
    values = trial.get("hyperparameters", {}).get("values", {})
    searched = spec.space.searched_names()
    params = {k: v for k, v in values.items() if k in searched}
    if "tuner/epochs" in values and EPOCHS in searched:
        params[EPOCHS] = values["tuner/epochs"]
    metric = spec.objectives[0].metric
    return {
        "number": int(trial["trial_id"]),
        "trial_id": trial["trial_id"],
        "state": state,
        "values": {metric: trial.get("score") if state == "complete" else None},
        "params": params,
        "fail_reason": _last_line(trial.get("message")) if state == "failed" else None,
    }


def _last_line(message: str | None) -> str | None:
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    return last.split(": ", 1)[1] if "Error: " in last else last


def _check_project(spec, project: Path) -> None:
    """The project must have been created with the same tuner and objective."""
    objective = spec.objectives[0]
    wanted = {
        "tuner": spec.kerastuner.tuner,
        "objective": objective.metric,
        "direction": objective.direction,
    }
    stored = _read_json(project / PROJECT_FILE)
    if stored:
        changed = {k: stored.get(k) for k, v in wanted.items() if stored.get(k) != v}
        if changed:
            now = {k: wanted[k] for k in changed}
            raise HarnessError(
                f"the KerasTuner project {project} was created with {changed}, the study now "
                f"says {now}; rename the study or use another --runs-dir"
            )
        return
    _write_json(project / PROJECT_FILE, wanted)


# --------------------------------------------------------------------------- backend API


def prepare(spec, run_dir: Path, storage_override: str | None = None, retry: bool = False) -> str:
    """Check the study, create or check the project directory, fail orphans; return its path.

    With ``retry`` (``harness run --retry-failed``) every failed trial is run again.
    """
    check_spec(spec)
    project = project_path(spec, run_dir, storage_override)
    project.mkdir(parents=True, exist_ok=True)
    _check_project(spec, project)
    if not _joining():  # a machine joining another's chief leaves the chief's markers alone
        (project / STOPPED_FILE).unlink(missing_ok=True)  # re-decided by this run's oracle
        (project / CHIEF_DONE_FILE).unlink(missing_ok=True)
    fail_orphans(spec, str(project), orphaned_pids(spec, str(project)))
    if retry:
        retry_failed(spec, str(project))
    if (run_dir / "optuna.journal").exists() and not any(project.glob("trial_*")):
        log.warning(
            "%s also holds an Optuna study; this KerasTuner search keeps its trials apart in %s, "
            "but trials.csv, best.json, best.keras and tb/ will describe the KerasTuner search "
            "(rename the study or use another --runs-dir to keep both)",
            run_dir,
            project,
        )
    return str(project)


def progress(spec, url: str) -> tuple[int, float | None]:
    """(finished trials, best value of the objective so far)."""
    stored = _stored_records(Path(url), spec)
    done = sum(1 for r in stored if r.get("state") in FINISHED)
    metric = spec.objectives[0].metric
    values = [
        r["values"].get(metric)
        for r in stored
        if r.get("state") == "complete" and r.get("values", {}).get(metric) is not None
    ]
    if not values:
        return done, None
    pick = max if spec.objectives[0].direction == "maximize" else min
    return done, pick(values)


def records(spec, url: str) -> list:
    """Every KerasTuner trial as a backend-agnostic :class:`harness.results.TrialRecord`."""
    from harness.results import TrialRecord

    metric_names = [o.metric for o in spec.objectives]
    out = []
    for record in _stored_records(Path(url), spec):
        values = record.get("values", {})
        out.append(
            TrialRecord(
                number=record["number"],
                state=record.get("state", "running"),
                values={m: values.get(m) for m in metric_names},
                params=dict(record.get("params", {})),
                metrics=dict(record.get("metrics", {})),
                duration_s=record.get("duration_s"),
                worker=record.get("worker"),
                device=record.get("device"),
                fail_reason=record.get("fail_reason"),
                history=dict(record.get("history", {})),
            )
        )
    return out


def fail_orphans(spec, url: str, reason_by_pid: dict[int, str]) -> int:
    """Mark running trials of dead worker processes (by pid, this host) as failed.

    KerasTuner itself would re-run such a trial (its oracle retries a trial left
    running); a trial marked here is instead ended as failed when KerasTuner hands
    it out again, as the Optuna backend does. Returns how many trials were marked.
    """
    marked = 0
    for path in Path(url).glob(f"trial_*/{RECORD_FILE}"):
        record = _read_json(path)
        pid = record.get("pid")
        if record.get("state") == "running" and record.get("host") == HOST and pid in reason_by_pid:
            record.update(state="failed", fail_reason=reason_by_pid[pid], orphaned=True)
            _write_json(path, record)
            marked += 1
    return marked


def orphaned_pids(spec, url: str) -> dict[int, str]:
    """Pids on this host that own running trials but no longer exist (a killed earlier run)."""
    dead: dict[int, str] = {}
    for path in Path(url).glob(f"trial_*/{RECORD_FILE}"):
        record = _read_json(path)
        pid = record.get("pid")
        if record.get("state") == "running" and record.get("host") == HOST:
            if isinstance(pid, int) and not process_alive(pid):
                dead[pid] = "interrupted: its worker process ended before the trial finished"
    return dead


def retry_failed(spec, url: str) -> int:
    """Queue every failed trial for KerasTuner's own retry (``harness run --retry-failed``).

    KerasTuner re-runs a retried trial in place: same number, same parameters, and
    its new outcome replaces the failure (until then its state reads ``waiting``).
    It does not count toward the budget twice. Call it while no process holds the
    oracle (the orchestrator does, before starting any worker).
    """
    project = Path(url)
    state = _read_json(project / "oracle.json")
    if not state:
        return 0
    failed = [r for r in _stored_records(project, spec) if r.get("state") == "failed"]
    ids = [r["trial_id"] for r in failed if r.get("trial_id") is not None]
    for trial_id in ids:
        path = _record_path(project, trial_id)
        record = _read_json(path)
        if record:
            record.update(state="waiting", orphaned=False, pid=None)
            _write_json(path, record)
    state["retry_queue"] = [*[t for t in state["retry_queue"] if t not in ids], *reversed(ids)]
    state["end_order"] = [t for t in state["end_order"] if t not in ids]
    _write_json(project / "oracle.json", state)
    return len(ids)


def search_over(spec, url: str) -> bool:
    """True when the oracle ended the search before the budget (grid done, space exhausted,
    too many failures in a row): the orchestrator then stops restarting workers."""
    return (Path(url) / STOPPED_FILE).is_file()


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
    if len(slots) < 2 and not spec.kerastuner.distributed:
        return slots
    from harness.devices import WorkerSlot

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


# --------------------------------------------------------------------------- running trials


class _StopSearch(Exception):
    """Leave ``tuner.search`` before asking for a trial (deadline, recycling, budget)."""


class _Runner:
    """What the tuner's ``run_trial`` does: one trial through :func:`harness.trial.run_trial`."""

    def __init__(self, context: StudyContext, plugins, kt_space, project: Path, **limits):
        self.context = context
        self.plugins = plugins
        self.kt_space = kt_space
        self.project = project
        self.budget: int = limits["budget"]
        self.deadline: float | None = limits["deadline"]
        self.max_trials: int | None = limits["max_trials"]
        self.memory_limit_mb: float | None = limits["memory_limit_mb"]
        self.role: str = limits["role"]
        self.worker: str = limits["worker"]
        self.device: str = limits["device"]
        self.on_trial_done = limits.get("on_trial_done")
        self.ran = 0
        self.aborted: BaseException | None = None

    def before_trial(self) -> None:
        if self.deadline is not None and time.time() >= self.deadline:
            raise _StopSearch("deadline")
        if self.max_trials is not None and self.ran >= self.max_trials:
            raise _StopSearch("recycle")
        if self.role == "worker" and (self.project / CHIEF_DONE_FILE).is_file():
            raise _StopSearch("the chief has finished")
        if self.memory_limit_mb is not None:
            from harness.devices import resident_memory_mb

            if resident_memory_mb() > self.memory_limit_mb:
                raise _StopSearch("memory")
        stored = _stored_records(self.project)
        if sum(1 for r in stored if r.get("state") in FINISHED) >= self.budget:
            raise _StopSearch("budget")

    def after_trial(self) -> None:
        if self.on_trial_done is not None:
            self.on_trial_done()
        if self.aborted is not None:
            raise self.aborted

    def run(self, trial) -> float:
        from keras_tuner import errors as kt_errors

        from harness.results import save_best_model
        from harness.trial import NullReporter, StudyAborted, release_trial_memory, run_trial

        spec = self.context.spec
        path = _record_path(self.project, trial.trial_id)
        previous = _read_json(path)
        if previous.get("orphaned"):  # its worker died: failed, as with Optuna; not re-run
            raise kt_errors.FailedTrialError(previous.get("fail_reason") or "interrupted")
        hp = trial.hyperparameters
        number = int(trial.trial_id)
        params = sample_params(self.kt_space, hp)
        record: dict[str, Any] = {
            "number": number,
            "trial_id": trial.trial_id,
            "state": "running",
            "values": {o.metric: None for o in spec.objectives},
            "params": {k: params[k] for k in self.kt_space.searched if k in params},
            "metrics": {},
            "duration_s": None,
            "worker": self.worker,
            "device": self.device,
            "fail_reason": None,
            "history": {},
            "pid": os.getpid(),
            "host": HOST,
            "kerastuner": {
                "tuner_id": os.environ.get("KERASTUNER_TUNER_ID", "tuner0"),
                **{k.removeprefix("tuner/"): v for k, v in hp.values.items() if k[:6] == "tuner/"},
            },
        }
        _write_json(path, record)
        self.ran += 1
        ctx = TrialContext(self.context, number, params, worker=self.worker, device=self.device)
        try:
            result = run_trial(ctx, self.plugins, NullReporter())
        except StudyAborted as exc:
            _write_json(path, {**record, "state": "failed", "fail_reason": str(exc)})
            self.aborted = exc
            raise kt_errors.FailedTrialError(str(exc)) from exc
        except KeyboardInterrupt:
            reason = "interrupted by the user"
            record.update(state="failed", fail_reason=reason, orphaned=True)
            _write_json(path, record)
            raise
        try:
            record.update(
                duration_s=round(result.duration_s, 3),
                metrics=dict(result.metrics),
                history=result.history,
            )
            if result.state != "complete":
                # KerasTuner cannot prune: a pruned trial would only come from a plugin.
                record.update(state=result.state, fail_reason=result.fail_reason)
                _write_json(path, record)
                raise kt_errors.FailedTrialError(result.fail_reason or result.state)
            record["values"] = {o.metric: result.metrics.get(o.metric) for o in spec.objectives}
            value = float(result.metrics[spec.objectives[0].metric])
            with _locked(self.project / BEST_LOCK):
                if _is_best(self.project, spec, value, number):
                    save_best_model(self.context.run_dir, ctx, result)
                _write_json(path, {**record, "state": "complete"})
            return value
        finally:
            release_trial_memory()


@contextlib.contextmanager
def _locked(path: Path):
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_best(project: Path, spec, value: float, number: int) -> bool:
    metric = spec.objectives[0].metric
    values = [
        r["values"][metric]
        for r in _stored_records(project)
        if r.get("state") == "complete"
        and r["number"] != number
        and r.get("values", {}).get(metric) is not None
    ]
    return better(value, values, spec.objectives[0].direction)


@functools.cache
def _oracle_class(base: type) -> type:
    """``base`` (a KerasTuner oracle) with the harness's enqueued trials, a failure limit
    that counts only the latest run of failures, and a marker when it stops early."""
    import keras_tuner
    from keras_tuner.engine import trial as trial_module

    status = trial_module.TrialStatus

    class HarnessOracle(base):
        harness_enqueue: tuple[dict[str, Any], ...] = ()
        harness_stop: str | None = None

        def populate_space(self, trial_id):
            response = super().populate_space(trial_id)
            values = response.get("values")
            index = int(trial_id)
            if (
                response.get("status") == status.RUNNING
                and values is not None
                and "tuner/trial_id" not in values
                and index < len(self.harness_enqueue)
            ):
                hp = self.hyperparameters.copy()
                hp.values = {**values, **self.harness_enqueue[index]}
                hp.ensure_active_values()
                response = {**response, "values": hp.values}
            return response

        def _check_consecutive_failures(self):
            limit = self.max_consecutive_failed_trials
            if not limit:
                return
            failed = 0
            for trial_id in reversed(self.end_order):
                if self.trials[trial_id].status != status.FAILED:
                    break
                failed += 1
            if failed >= limit:
                last = self.trials[self.end_order[-1]]
                reason = _read_json(_record_path(Path(self._project_dir), last.trial_id)).get(
                    "fail_reason"
                ) or _last_line(last.message)
                self.harness_stop = (
                    f"KerasTuner stopped the search: {failed} trials in a row failed "
                    f"([kerastuner].max_consecutive_failed_trials = {limit}); last reason: {reason}"
                )
                _write_json(
                    Path(self._project_dir) / STOPPED_FILE,
                    {"kind": "failures", "reason": self.harness_stop},
                )

        @keras_tuner.synchronized
        def create_trial(self, tuner_id):
            if self.harness_stop is not None:
                self.tuner_ids.discard(tuner_id)
                return trial_module.Trial(self.hyperparameters.copy(), status=status.STOPPED)
            trial = super().create_trial(tuner_id)
            if trial.status == status.STOPPED and len(self.trials) < (self.max_trials or 1e18):
                _write_json(
                    Path(self._project_dir) / STOPPED_FILE,
                    {
                        "kind": "exhausted",
                        "reason": f"no untried combination left after {len(self.trials)} trials",
                    },
                )
            return trial

    HarnessOracle.__name__ = HarnessOracle.__qualname__ = f"Harness{base.__name__}"
    return HarnessOracle


@functools.cache
def _tuner_class() -> type:
    from keras_tuner.engine import base_tuner

    class HarnessTuner(base_tuner.BaseTuner):
        """KerasTuner proposes and records; the harness's runner runs the trial."""

        def __init__(self, oracle, runner: _Runner, **kwargs):
            self.runner = runner
            super().__init__(oracle=oracle, hypermodel=None, overwrite=False, **kwargs)

        def pre_create_trial(self):
            self.runner.before_trial()

        def run_trial(self, trial, *fit_args, **fit_kwargs):
            return self.runner.run(trial)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            self.runner.after_trial()

    return HarnessTuner


def make_oracle(spec, kt_space: KerasTunerSpace, budget: int):
    """The oracle ``[kerastuner].tuner`` names, holding the declared space."""
    import keras_tuner as kt

    section = spec.kerastuner
    objective = spec.objectives[0]
    common = {
        "objective": kt.Objective(
            objective.metric, "max" if objective.direction == "maximize" else "min"
        ),
        "seed": spec.study.seed,
        "hyperparameters": declare_space(kt_space),
        "max_consecutive_failed_trials": section.max_consecutive_failed_trials,
    }
    if section.tuner == "hyperband":
        # Brackets repeat until the budget ([study].trials) is spent.
        oracle = _oracle_class(kt.oracles.HyperbandOracle)(
            max_epochs=kt_space.max_epochs,
            factor=section.hyperband_factor,
            hyperband_iterations=None,
            **common,
        )
    else:
        base = {
            "random": kt.oracles.RandomSearchOracle,
            "bayesian": kt.oracles.BayesianOptimizationOracle,
            "grid": kt.oracles.GridSearchOracle,
        }[section.tuner]
        oracle = _oracle_class(base)(max_trials=budget, **common)
    oracle.max_trials = budget  # not part of KerasTuner's saved state: this run's budget
    oracle.verbose = 0
    if section.tuner != "grid":
        names = set(kt_space.scopes)
        oracle.harness_enqueue = tuple(
            {k: v for k, v in trial.items() if k in names} for trial in spec.enqueue
        )
    return oracle


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


def open_tuner(spec, kt_space: KerasTunerSpace, project: Path, budget: int, runner, role: str):
    """Create the tuner, or reload the project to resume it (never overwritten)."""
    from keras_tuner.src import config as kt_config

    kt_config.DEBUG = False  # no traceback per failed trial: the record holds the reason
    project.mkdir(parents=True, exist_ok=True)
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
    own_file = project / f"{tuner_id}.json"
    if role != "worker" and (project / "oracle.json").is_file() and not own_file.is_file():
        # KerasTuner reloads only when this tuner id saved before (a local run after a
        # chief/worker one, or the reverse): without this it would start over.
        own_file.write_text("{}\n", encoding="utf-8")
    oracle = make_oracle(spec, kt_space, budget)
    with contextlib.redirect_stdout(io.StringIO()):  # "Reloading Tuner from ..."
        tuner = _tuner_class()(
            oracle, runner, directory=str(project.parent), project_name=project.name
        )
    if role == "worker":
        tuner.oracle = _Quiet(tuner.oracle)
        return tuner
    declared = declare_space(kt_space)
    if spec.kerastuner.tuner == "grid":
        tuner.oracle.update_space(declared)  # the grid's order needs the stored space
    else:
        tuner.oracle.hyperparameters = declared  # a resumed study searches today's space
    return tuner


def run_worker(
    context: StudyContext,
    plugins: Any,
    *,
    storage_url_: str,
    budget: int,
    deadline: float | None = None,
    max_trials: int | None = None,
    worker: str = "main",
    device: str = "cpu",
    memory_limit_mb: float | None = None,
    on_trial_done: Any = None,
) -> int:
    """Run KerasTuner's search until the budget, the deadline or ``max_trials`` is reached
    (or, between trials, this process's memory is above ``memory_limit_mb``).

    Without KerasTuner's distribution variables this process owns the oracle. With
    ``KERASTUNER_TUNER_ID=chief`` it serves the oracle to the workers and trains
    nothing; with ``tuner<N>`` it pulls trials from the chief. Returns how many trials
    this call ran. A failing trial is recorded with its reason and the search goes on.
    """
    spec = context.spec
    kt_space = translate(spec)
    project = Path(storage_url_)
    role = _role()
    runner = _Runner(
        context,
        plugins,
        kt_space,
        project,
        role=role,
        budget=budget,
        deadline=deadline,
        max_trials=max_trials,
        memory_limit_mb=memory_limit_mb,
        worker=worker,
        device=device,
        on_trial_done=on_trial_done,
    )
    tuner = open_tuner(spec, kt_space, project, budget, runner, role)
    if role == "chief":
        _serve(tuner, project, budget, deadline)
    else:
        try:
            tuner.search()
        except _StopSearch:
            pass
        except Exception as exc:
            if role == "worker" and type(exc).__module__.startswith("grpc"):
                address = _oracle_address()
                details = exc.details() if hasattr(exc, "details") else exc
                raise HarnessError(f"lost the KerasTuner chief at {address}: {details}") from None
            raise
    if role == "worker":
        return runner.ran
    if tuner.oracle.harness_stop is not None:
        raise HarnessError(tuner.oracle.harness_stop)
    stopped = _read_json(project / STOPPED_FILE)
    if stopped:
        log.warning("KerasTuner ended the search early: %s", stopped.get("reason"))
    return runner.ran


def _serve(tuner, project: Path, budget: int, deadline: float | None) -> None:
    """The chief: serve the oracle over gRPC until the search is over and no trial runs.

    KerasTuner's own ``oracle_chief.start_server`` waits until every worker that
    ever asked has heard STOPPED; a worker that was recycled, or that stopped at the
    budget or the deadline, never does, so this loop ends on those too. Before it
    stops serving it writes ``harness_chief_done.json`` (workers check it before
    asking for a trial) and keeps answering for a few seconds, so no worker is left
    waiting on a chief that is gone.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

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
                    or len(oracle.trials) >= budget
                    or (deadline is not None and time.time() >= deadline)
                )
                if over and not oracle.ongoing_trials:
                    break
            _write_json(project / CHIEF_DONE_FILE, {"pid": os.getpid(), "host": HOST})
            time.sleep(CHIEF_GRACE_S)
    finally:
        server.stop(grace=1)
