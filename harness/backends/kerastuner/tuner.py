"""Opening and running the search: KerasTuner proposes hyperparameters and receives
results; every trial runs through :func:`harness.trial.run_trial`.

A :class:`keras_tuner.engine.base_tuner.BaseTuner` subclass overrides ``run_trial``
to call the harness's one trial runner, so data, model building, fitting,
callbacks, TensorBoard and the results table are the same as with Optuna.
``prepare`` readies the project before any worker starts; ``run_worker`` runs the
search (in a chief: serves it).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import time
from pathlib import Path
from typing import Any

from harness.backends.base import WorkerTask
from harness.backends.keep import keep_trial_model
from harness.backends.kerastuner.config import config
from harness.backends.kerastuner.distributed import _joining, _oracle_address, _Quiet, _role, _serve
from harness.backends.kerastuner.space import (
    KerasTunerSpace,
    check_spec,
    declare_space,
    sample_params,
    translate,
)
from harness.backends.kerastuner.store import (
    BEST_LOCK,
    CHIEF_DONE_FILE,
    HOST,
    ORPHANED,
    RETRIES,
    STOPPED_FILE,
    STOPPED_STUDY,
    _check_project,
    _last_line,
    _locked,
    _read_json,
    _record_path,
    _stored_records,
    _write_json,
    completed_values,
    fail_orphans,
    finished_count,
    orphaned_pids,
    project_path,
    record_definition,
    requeue_stopped,
    retry_failed,
)
from harness.context import StudyContext, TrialContext
from harness.devices import resident_memory_mb
from harness.errors import HarnessError
from harness.trial import (
    INTERRUPTED_RESULT,
    NullReporter,
    StudyAborted,
    release_trial_memory,
    run_trial,
)

log = logging.getLogger(__package__)  # the logger name harness.log has always shown


def prepare(spec, run_dir: Path, storage_override: str | None = None, retry: bool = False) -> str:
    """Check the study, create or check the project directory, fail orphans; return its path.

    With ``retry`` (``harness run --retry-failed``) every failed trial is run again.
    """
    check_spec(spec)
    project = project_path(spec, run_dir, storage_override)
    project.mkdir(parents=True, exist_ok=True)
    _check_project(spec, project)
    record_definition(spec, project)
    if not _joining():  # a machine joining another's chief leaves the chief's markers alone
        (project / STOPPED_FILE).unlink(missing_ok=True)  # re-decided by this run's oracle
        (project / CHIEF_DONE_FILE).unlink(missing_ok=True)
        requeue_stopped(spec, str(project))  # it never trained: it runs first
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
            if resident_memory_mb() > self.memory_limit_mb:
                raise _StopSearch("memory")
        stored = _stored_records(self.project)
        if finished_count(stored, self.context.spec.study.max_retries) >= self.budget:
            raise _StopSearch("budget")

    def after_trial(self) -> None:
        if self.on_trial_done is not None:
            self.on_trial_done()
        if self.aborted is not None:
            raise self.aborted

    def run(self, trial) -> float:
        from keras_tuner import errors as kt_errors  # lazy: keras_tuner imports TensorFlow

        spec = self.context.spec
        path = _record_path(self.project, trial.trial_id)
        previous = _read_json(path)
        if previous.get("state") == "complete":
            # Its worker stopped after recording it but before the oracle heard: KerasTuner
            # hands it out again on resume. It is done; report it rather than retrain it.
            return float(previous["values"][spec.objectives[0].metric])
        retries = int(previous.get(RETRIES) or 0)
        if previous.get(ORPHANED):  # KerasTuner hands out a trial whose run was cut short
            if retries >= spec.study.max_retries:
                raise kt_errors.FailedTrialError(previous.get("fail_reason") or "interrupted")
            retries += 1  # re-run in place: same number, same parameters
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
            RETRIES: retries,
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
            failed = {**record, "state": "failed", "fail_reason": str(exc), STOPPED_STUDY: True}
            _write_json(path, failed)
            self.aborted = exc
            raise kt_errors.FailedTrialError(str(exc)) from exc
        except KeyboardInterrupt:
            reason = "interrupted by the user"
            record.update(state="failed", fail_reason=reason, **{ORPHANED: True})
            if ctx.extra.get(INTERRUPTED_RESULT) is not None:  # the figures trackers got
                record.update(_figures(ctx.extra[INTERRUPTED_RESULT]))
            _write_json(path, record)
            raise
        try:
            record.update(_figures(result))
            if result.state != "complete":
                # KerasTuner cannot prune: a pruned trial comes from [study].stop_at_chance
                # or a plugin.
                record.update(state=result.state, fail_reason=result.fail_reason)
                _write_json(path, record)
                raise kt_errors.FailedTrialError(result.fail_reason or result.state)
            record["values"] = {o.metric: result.metrics.get(o.metric) for o in spec.objectives}
            value = float(result.metrics[spec.objectives[0].metric])
            with _locked(self.project / BEST_LOCK):
                done, finished = completed_values(self.project, spec)
                done[number] = [float(record["values"][o.metric]) for o in spec.objectives]
                keep_trial_model(self.context.run_dir, spec, ctx, result, done, finished)
                _write_json(path, {**record, "state": "complete"})
            return value
        finally:
            release_trial_memory()


def _figures(result) -> dict[str, Any]:
    """What a trial measured, as its record keeps it: duration, metrics, per-epoch history."""
    return {
        "duration_s": round(result.duration_s, 3),
        "metrics": dict(result.metrics),
        "history": result.history,
    }


@functools.cache
def _oracle_class(base: type) -> type:
    """``base`` (a KerasTuner oracle) with the harness's enqueued trials, a failure limit
    that counts only the latest run of failures, and a marker when it stops early."""
    import keras_tuner  # imports TensorFlow: only when the search runs
    from keras_tuner.engine import trial as trial_module  # lazy: keras_tuner imports TensorFlow

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
                record = _read_json(_record_path(Path(self._project_dir), trial_id))
                if record.get("state") == "pruned":  # KerasTuner's FAILED, but not broken
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
    from keras_tuner.engine import base_tuner  # imports TensorFlow: only when the search runs

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
    import keras_tuner as kt  # imports TensorFlow: only when the search runs

    section = config(spec)
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


def open_tuner(spec, kt_space: KerasTunerSpace, project: Path, budget: int, runner, role: str):
    """Create the tuner, or reload the project to resume it (never overwritten)."""
    from keras_tuner.src import config as kt_config  # imports TensorFlow: only when run

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
    if config(spec).tuner == "grid":
        tuner.oracle.update_space(declared)  # the grid's order needs the stored space
    else:
        tuner.oracle.hyperparameters = declared  # a resumed study searches today's space
    return tuner


def run_worker(context: StudyContext, plugins: Any, task: WorkerTask) -> int:
    """Run KerasTuner's search until the budget, the deadline or ``max_trials`` is reached
    (or, between trials, this process's memory is above ``memory_limit_mb``).

    Without KerasTuner's distribution variables this process owns the oracle. With
    ``KERASTUNER_TUNER_ID=chief`` it serves the oracle to the workers and trains
    nothing; with ``tuner<N>`` it pulls trials from the chief. Returns how many trials
    this call ran. A failing trial is recorded with its reason and the search goes on.
    """
    storage_url_, budget, deadline = task.storage_url, task.budget, task.deadline
    max_trials, memory_limit_mb, on_trial_done = (
        task.max_trials, task.memory_limit_mb, task.on_trial_done
    )
    worker, device = task.worker, task.device
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
        _serve(tuner, project, budget, deadline, spec.study.max_retries)
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
