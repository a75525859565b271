"""Optuna backend: samplers, pruners, resume and the trial loop; trials run through
harness.trial. Its ``[optuna]`` table is :mod:`~harness.backends.optuna_config`, where a
study lives is :mod:`~harness.backends.optuna_storage`."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from harness.backends.base import WorkerTask
from harness.backends.keep import keep_trial_model
from harness.backends.optuna_config import Config as Config
from harness.backends.optuna_config import config
from harness.backends.optuna_storage import (
    Heartbeat,
    heartbeat_ages,
    make_storage,
    read_storage,
    removed_on_error,
    storage_exists,
    storage_url,
)
from harness.backends.optuna_storage import join_storage as join_storage
from harness.context import StudyContext, TrialContext
from harness.devices import process_alive, resident_memory_mb
from harness.errors import HarnessError, TrialPruned
from harness.results import TrialRecord
from harness.resume import study_definition
from harness.study import StudySpec, TrainParams
from harness.trial import INTERRUPTED_RESULT, StudyAborted, release_trial_memory, run_trial

log = logging.getLogger(__name__)
# Optuna's records go through harness.logs' handlers: one line in the terminal,
# tracebacks in runs/<study>/harness.log.
optuna.logging.disable_default_handler()
optuna.logging.enable_propagation()

FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)
HOST = socket.gethostname()
ENQUEUED_FLAG = "harness:enqueued"


def worker_seed(seed: int | None, worker: str, trials_before: int) -> int | None:
    """The sampler seed of one worker process.

    Every worker process (parallel, recycled or resumed) gets its own seed, or
    they would all draw the same parameter sequence; a fresh study's first
    worker keeps ``[study].seed`` itself, so a one-worker study is reproducible.
    """
    if seed is None:
        return None
    if trials_before == 0 and worker in ("main", "w0"):
        return seed
    return zlib.crc32(f"{seed}:{worker}:{trials_before}".encode())


def make_sampler(spec: StudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler the study names, seeded with ``seed`` (default ``[study].seed``)."""
    name = config(spec).sampler
    seed = spec.study.seed if seed is None else seed
    startup = config(spec).startup_trials
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=seed, n_startup_trials=startup, warn_independent_sampling=False
        )
    if name == "gp":
        try:
            # lazy: optional (pip install 'harness[gp]'), only probed for the gp sampler
            import torch  # noqa: F401
        except ImportError:
            raise HarnessError(
                "[optuna].sampler = 'gp' needs PyTorch: pip install 'harness[gp]' "
                "(or pick tpe, random, cmaes or nsga2)"
            ) from None
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=startup, multivariate=True, group=True
    )


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The pruner the study names; multi-objective studies are never pruned (Optuna can't)."""
    settings = config(spec)
    name = settings.pruner
    if name == "none" or spec.multi_objective:
        return optuna.pruners.NopPruner()
    # Both schedules rung at 1, 3, 9, ... epochs (factor 3, as KerasTuner's Hyperband).
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    median = optuna.pruners.MedianPruner(
        n_startup_trials=settings.startup_trials, n_warmup_steps=warmup_epochs(spec)
    )
    # Optuna's median is taken over finished (complete) trials only, so every pruned trial
    # raises the bar for the next: on 4-epoch MNIST trials the bare median pruner stopped
    # 8 of 13 (bench/search_quality.py). A trial still improving is therefore left alone;
    # the median is asked once it has not improved for `patience` epochs.
    with warnings.catch_warnings():  # PatientPruner is marked experimental since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.pruners.PatientPruner(median, patience=settings.patience_epochs)


def warmup_epochs(spec: StudySpec) -> int:
    """Epochs a trial trains before the median pruner may stop it: ``[optuna].warmup_epochs``,
    else half the fewest epochs a trial can have (at least 1).

    A fixed early warm-up prunes on noise when trials are short: a trial that is behind
    after its first epoch is often ahead after its last (with 4-epoch MNIST trials and 1
    warm-up epoch the median pruner stopped 8 or 9 of 13 trials, bench/search_quality.py).
    """
    chosen = config(spec).warmup_epochs
    if chosen is not None:
        return chosen
    epochs = spec.space.literals.get("train.epochs")
    searched = spec.space.get("train.epochs")
    if searched is not None:
        epochs = int(min(searched.distribution.representatives()))
    return max(1, int(epochs or TrainParams.model_fields["epochs"].default) // 2)


def heartbeat(spec: StudySpec) -> Heartbeat:
    """The study's heartbeat settings (``[optuna].heartbeat_seconds``, ``grace_seconds``)."""
    settings = config(spec)
    return Heartbeat(settings.heartbeat_seconds, settings.grace_seconds)


def _storage(spec: StudySpec, url: str) -> optuna.storages.BaseStorage:
    """The storage at ``url``, opened to run the study (its heartbeat settings)."""
    return make_storage(url, heartbeat(spec))


def open_study(spec: StudySpec, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the study or load it to resume; enqueue the hand-picked trials once."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = [objective.direction for objective in spec.objectives]
    # Load an existing study without writing: create_study(load_if_exists=True) would
    # append a "create" record to a journal on every resume, refused or not.
    existing = {summary.study_name for summary in storage.get_all_studies()}
    try:
        if spec.name in existing:
            study = optuna.load_study(
                study_name=spec.name,
                storage=storage,
                sampler=make_sampler(spec),
                pruner=make_pruner(spec),
            )
        else:
            study = optuna.create_study(
                storage=storage,
                study_name=spec.name,
                sampler=make_sampler(spec),
                pruner=make_pruner(spec),
                directions=directions,
                load_if_exists=True,
            )
    except ValueError as exc:
        raise HarnessError(f"study {spec.name!r} in this storage does not match: {exc}")
    check_directions(spec, study.directions)
    name_objectives(study, spec)
    if not study.user_attrs.get(ENQUEUED_FLAG):
        study.set_user_attr(ENQUEUED_FLAG, True)
        for params in spec.enqueue:
            study.enqueue_trial(params)
    return study


def name_objectives(study: optuna.Study, spec: StudySpec) -> None:
    """Name the study's objectives after their metrics (``val_accuracy``, not optuna-dashboard's
    "Objective 0"); a study created unnamed (by an older version) is named when it resumes.
    Written only when the names differ: a journal would grow a record on every open."""
    names = [objective.metric for objective in spec.objectives]
    if study.metric_names == names:
        return
    with warnings.catch_warnings():  # set_metric_names is marked experimental since Optuna 3.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(names)


SURPLUS = "harness:surplus"
RETRIED = "harness:retried"
#: A trial whose run was cut short from outside (worker killed, Ctrl-C, machine lost): it
#: never counts toward the budget and its parameters are run again (``[study].max_retries``).
INTERRUPTED = "harness:interrupted"
#: A trial that stopped the study (input no trial can get past: data, a missing metric).
#: It never trained, so it does not count, and its parameters run again once the study
#: is run again (after the fix), with no limit on how often.
STOPPED_STUDY = "harness:stopped_study"
#: On a re-run trial: the number of the interrupted (or ``--retry-failed``) trial it repeats.
RETRY_OF = "harness:retry_of"
#: Study attribute: numbers of interrupted trials whose re-run was already enqueued.
REQUEUED = "harness:requeued"
INTERRUPTED_BY_USER = "interrupted by the user"


def retried_numbers(study: optuna.Study) -> set[int]:
    """Numbers of failed trials whose parameters were enqueued again by ``--retry-failed``
    (a study attribute, since a finished trial can no longer be changed)."""
    return set(study.user_attrs.get(RETRIED, []))


def counts(trial: FrozenTrial, retried: set[int]) -> bool:
    """Whether ``trial`` takes a slot of the budget: not surplus, not interrupted, not
    replaced by a ``--retry-failed`` re-run."""
    attrs = trial.user_attrs
    return (
        not attrs.get(SURPLUS)
        and not attrs.get(INTERRUPTED)
        and not attrs.get(STOPPED_STUDY)
        and trial.number not in retried
    )


def counted_trials(study: optuna.Study, states=FINISHED) -> list[FrozenTrial]:
    """Trials in ``states`` that count toward the budget (see :func:`counts`)."""
    retried = retried_numbers(study)
    return [t for t in study.get_trials(deepcopy=False, states=states) if counts(t, retried)]


def retry_failed(spec: StudySpec, url: str) -> int:
    """Enqueue the parameters of every failed trial again (``harness run --retry-failed``).

    The failed trial stays in the table with its reason but no longer counts
    toward the budget, so its re-run takes its place. A trial with no searched
    parameters (every value fixed) is not enqueued: any new trial runs the same values.
    """
    study = optuna.load_study(study_name=spec.name, storage=_storage(spec, url))
    failed = counted_trials(study, (optuna.trial.TrialState.FAIL,))
    for trial in failed:
        if trial.params:
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
    study.set_user_attr(RETRIED, sorted(retried_numbers(study) | {t.number for t in failed}))
    return len(failed)


def retry_depth(trial: FrozenTrial, by_number: dict[int, FrozenTrial]) -> int:
    """How many times these parameters already ran before ``trial`` (0: a first run)."""
    depth, seen = 0, {trial.number}
    parent = trial.user_attrs.get(RETRY_OF)
    while isinstance(parent, int) and parent in by_number and parent not in seen:
        depth += 1
        seen.add(parent)
        parent = by_number[parent].user_attrs.get(RETRY_OF)
    return depth


def requeue_interrupted(spec: StudySpec, url: str) -> int:
    """Enqueue once more the parameters of every interrupted trial (up to ``max_retries``
    runs of the same parameters), as Optuna's RetryFailedTrialCallback does, and of every
    trial that stopped the study (always: it never trained); the new trial records which
    trial it repeats. Returns how many were enqueued."""
    study = optuna.load_study(study_name=spec.name, storage=_storage(spec, url))
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    done = set(study.user_attrs.get(REQUEUED, []))
    fresh = [
        t
        for t in trials
        if t.state == optuna.trial.TrialState.FAIL
        and (t.user_attrs.get(INTERRUPTED) or t.user_attrs.get(STOPPED_STUDY))
        and t.number not in done
    ]
    if not fresh:
        return 0
    enqueued = 0
    for trial in fresh:
        stopped = trial.user_attrs.get(STOPPED_STUDY)
        if trial.params and (stopped or retry_depth(trial, by_number) < spec.study.max_retries):
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
            enqueued += 1
    study.set_user_attr(REQUEUED, sorted(done | {t.number for t in fresh}))
    return enqueued


def finished_count(study: optuna.Study) -> int:
    """Trials that count toward the budget: complete, pruned or failed."""
    return len(counted_trials(study))


def budget_taken(study: optuna.Study) -> int:
    """Finished plus running trials: when this reaches the budget, a worker stops pulling."""
    return len(counted_trials(study, FINISHED + (optuna.trial.TrialState.RUNNING,)))


def is_surplus(study: optuna.Study, number: int, budget: int) -> bool:
    """True when ``budget`` trials numbered below ``number`` already exist.

    Storage assigns trial numbers atomically, so with several workers exactly
    the trials numbered inside the budget run; a late one is marked surplus
    and left out of every count and table (``--trials 20`` gives 20, not 23).
    """
    retried = retried_numbers(study)
    earlier = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.number < number
        and t.state != optuna.trial.TrialState.WAITING
        and counts(t, retried)
    ]
    return len(earlier) >= budget


class _Suggester:
    """Adapts an Optuna trial to :class:`harness.space.Suggester`."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def suggest_int(self, name, low, high, *, step=1, log=False):
        return self.trial.suggest_int(name, low, high, step=step, log=log)

    def suggest_float(self, name, low, high, *, step=None, log=False):
        return self.trial.suggest_float(name, low, high, step=step, log=log)

    def suggest_categorical(self, name, choices):
        return self.trial.suggest_categorical(name, choices)


class OptunaReporter:
    """Feeds the first objective to Optuna each epoch and raises TrialPruned when told;
    the last epoch is reported (other trials' medians use it) but never pruned."""

    def __init__(self, trial: optuna.Trial, spec: StudySpec):
        self.trial = trial
        self.metric = spec.objectives[0].metric
        self.enabled = not spec.multi_objective

    def report(self, epoch: int, metrics: dict[str, float], *, last: bool = False) -> None:
        if not self.enabled or self.metric not in metrics:
            return
        self.trial.report(metrics[self.metric], epoch)
        if not last and self.trial.should_prune():
            raise TrialPruned(f"pruned at epoch {epoch + 1}")


def _keep_model(study, spec, context, ctx, result, values) -> None:
    """Keep this trial's model if it is among the best (``harness.backends.keep``)."""
    complete = optuna.trial.TrialState.COMPLETE
    done = {
        t.number: list(t.values)
        for t in study.get_trials(deepcopy=False, states=(complete,))
        if t.values
    }
    done[ctx.number] = list(values)
    finished = {t.number for t in study.get_trials(deepcopy=False, states=FINISHED)}
    reruns = {
        t.number: t.user_attrs[RETRY_OF]
        for t in study.get_trials(deepcopy=False)
        if isinstance(t.user_attrs.get(RETRY_OF), int)
    }
    keep_trial_model(context.run_dir, spec, ctx, result, done, finished, reruns)


def run_worker(context: StudyContext, plugins: Any, task: WorkerTask) -> int:
    """Pull and run trials until the budget, the deadline or ``max_trials`` is reached.

    ``on_trial_done()`` (an in-process run's results writer) is called after each trial.

    Returns how many trials this call ran; a return before the budget is met
    (``max_trials`` or ``memory_limit_mb`` reached) asks for a fresh worker. Every
    trial goes through :func:`harness.trial.run_trial`; a failing trial is recorded
    with its reason and the loop goes on.
    """
    storage_url_, budget, deadline = task.storage_url, task.budget, task.deadline
    max_trials, memory_limit_mb, on_trial_done = (
        task.max_trials, task.memory_limit_mb, task.on_trial_done
    )
    worker, device = task.worker, task.device

    spec = context.spec
    storage = _storage(spec, storage_url_)
    study = open_study(spec, storage)
    waiting = optuna.trial.TrialState.WAITING
    before = sum(t.state != waiting for t in study.get_trials(deepcopy=False))
    study.sampler = make_sampler(spec, worker_seed(spec.study.seed, worker, before))
    ran = 0
    surplus_seen = False

    def objective(trial: optuna.Trial):
        nonlocal surplus_seen
        if is_surplus(study, trial.number, budget):
            surplus_seen = True
            trial.set_user_attr(SURPLUS, True)
            raise _Failed("surplus: the budget was met by other workers")
        params = spec.space.sample(_Suggester(trial))
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("device", device)
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", HOST)
        ctx = TrialContext(context, trial.number, params, worker=worker, device=device)
        try:
            result = run_trial(ctx, plugins, OptunaReporter(trial, spec))
        except StudyAborted as exc:
            trial.set_user_attr("fail_reason", str(exc))
            trial.set_user_attr(STOPPED_STUDY, True)
            raise
        except KeyboardInterrupt:
            trial.set_user_attr(INTERRUPTED, True)
            trial.set_user_attr("fail_reason", INTERRUPTED_BY_USER)
            if ctx.extra.get(INTERRUPTED_RESULT) is not None:
                _record_figures(trial, ctx.extra[INTERRUPTED_RESULT])
            raise
        _record_figures(trial, result)
        try:
            if result.state == "failed":
                trial.set_user_attr("fail_reason", result.fail_reason)
                raise _Failed(result.fail_reason)
            if result.state == "pruned":
                if result.fail_reason:  # why it was stopped, when not by the pruner
                    trial.set_user_attr("fail_reason", result.fail_reason)
                raise optuna.TrialPruned()
            values = [result.metrics[o.metric] for o in spec.objectives]
            _keep_model(study, spec, context, ctx, result, values)
            return values if spec.multi_objective else values[0]
        finally:
            release_trial_memory()

    while True:
        # A trial whose machine went silent is taken over (run again) before a new one.
        _fail_stale(spec, storage_url_, study, storage)
        if budget_taken(study) >= budget:
            break
        if deadline is not None and time.time() >= deadline:
            break
        if max_trials is not None and ran >= max_trials:
            break
        if memory_limit_mb is not None and resident_memory_mb() > memory_limit_mb:
            log.info("worker %s above %s MB: recycling", worker, memory_limit_mb)
            break
        # StudyAborted is not caught: Optuna records the trial as failed and re-raises it.
        study.optimize(objective, n_trials=1, catch=(_Failed,), gc_after_trial=False)
        if on_trial_done is not None:
            on_trial_done()
        if surplus_seen:
            # Every remaining slot is held by a running trial of another worker.
            break
        ran += 1
    return ran


def _record_figures(trial: optuna.Trial, result) -> None:
    """Store what the trial measured (duration, per-epoch history, last epoch's metrics):
    the figures the trackers were given, also for a trial that did not complete."""
    trial.set_user_attr("duration_s", round(result.duration_s, 3))
    trial.set_user_attr("history", json.dumps(result.history))
    for key, value in result.metrics.items():
        trial.set_user_attr(f"metric:{key}", value)


class _Failed(Exception):
    """Marks an Optuna trial FAIL with the runner's reason (already stored as a user attr)."""


_STATES = {
    optuna.trial.TrialState.COMPLETE: "complete",
    optuna.trial.TrialState.PRUNED: "pruned",
    optuna.trial.TrialState.FAIL: "failed",
    optuna.trial.TrialState.RUNNING: "running",
    optuna.trial.TrialState.WAITING: "waiting",
}


def trial_records(study: optuna.Study, spec: StudySpec) -> list:
    """Every stored trial as a backend-agnostic :class:`harness.results.TrialRecord`."""
    metric_names = [o.metric for o in spec.objectives]
    retried = retried_numbers(study)
    requeued = set(study.user_attrs.get(REQUEUED, []))
    trials = study.get_trials(deepcopy=False)
    rerun_as = {
        t.user_attrs[RETRY_OF]: t.number
        for t in trials
        if isinstance(t.user_attrs.get(RETRY_OF), int)
    }
    records = []
    for trial in trials:
        attrs = trial.user_attrs
        if attrs.get(SURPLUS):
            continue
        values = dict(zip(metric_names, trial.values or [None] * len(metric_names), strict=True))
        metrics = {
            k.removeprefix("metric:"): v for k, v in attrs.items() if k.startswith("metric:")
        }
        duration = attrs.get("duration_s")
        if duration is None and trial.datetime_start and trial.datetime_complete:
            duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
        records.append(
            TrialRecord(
                number=trial.number,
                state=_STATES.get(trial.state, str(trial.state)),
                values=values,
                params=dict(trial.params),
                metrics=metrics,
                duration_s=duration,
                worker=attrs.get("worker"),
                device=attrs.get("device"),
                fail_reason=_reason(
                    attrs,
                    rerun_as.get(trial.number),
                    trial.number in retried,
                    trial.number in requeued,
                ),
                history=json.loads(attrs.get("history", "{}")),
                retry_of=attrs.get(RETRY_OF),
                counted=counts(trial, retried),
            )
        )
    return records


def prepare(
    spec: StudySpec, run_dir: Path, storage_override: str | None = None, retry: bool = False
) -> str:
    """Create or load the study (schema and enqueued trials) before any worker starts, and
    record in it what its trials train (:func:`stored_definition`).

    Doing this once in the orchestrator avoids workers racing on a new SQLite
    schema. Returns the storage URL the workers must use.
    """
    url = storage_url(spec, run_dir, storage_override)
    _refuse_other_directions(spec, url)  # read only: a refused run mends nothing
    with removed_on_error(url):
        study = open_study(spec, _storage(spec, url))
    definition = study_definition(spec)  # for stored_definition: any machine that joins
    if study.user_attrs.get(DEFINITION) != definition:
        study.set_user_attr(DEFINITION, definition)
    fail_orphans(spec, url, orphaned_pids(spec, url))
    fail_stale(spec, url)
    requeue_interrupted(spec, url)
    if retry:
        retry_failed(spec, url)
    return url


def check_directions(spec: StudySpec, stored_directions) -> None:
    """Refuse a stored study whose objective directions are not the study file's."""
    stored = [d.name.lower() for d in stored_directions]
    directions = [objective.direction for objective in spec.objectives]
    if stored != directions:
        raise HarnessError(
            f"study {spec.name!r} was created with directions {stored}, the file now says "
            f"{directions}; rename the study or use another --runs-dir"
        )


def _refuse_other_directions(spec: StudySpec, url: str) -> None:
    """Refuse a study the storage holds with other directions by reading it, before it is
    opened to be written (which mends a journal whose last record was cut off)."""
    if not storage_exists(url):
        return
    for summary in read_storage(url).get_all_studies():
        if summary.study_name == spec.name:
            check_directions(spec, summary.directions)


#: Study attribute: what every trial trains (``harness.resume.study_definition``), kept in
#: the storage so that a ``harness worker`` on another machine is checked against it.
DEFINITION = "harness:definition"


def stored_definition(
    spec: StudySpec, run_dir: Path, storage_override: str | None = None
) -> tuple[dict[str, Any], bool]:
    """The definition the storage records for the study, and whether trials were trained
    under it: one finished (complete or pruned), or one running now, which may be on
    another machine (a RUNNING trial whose process on this host is gone does not count).
    ``({}, False)`` for a study not in the storage yet or recorded by an older version.
    Writes nothing: a journal or SQLite file not yet there is not created."""
    url = storage_url(spec, run_dir, storage_override)
    if not storage_exists(url):
        return {}, False
    storage = read_storage(url)
    summaries = {s.study_name: s for s in storage.get_all_studies()}
    summary = summaries.get(spec.name)
    if summary is None or not isinstance(summary.user_attrs.get(DEFINITION), dict):
        return {}, False
    study = optuna.load_study(study_name=spec.name, storage=storage)
    done = study.get_trials(
        deepcopy=False,
        states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED),
    )
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    orphans = {t.number for t in orphaned_trials(study)}
    training = [t for t in running if t.number not in orphans]
    return summary.user_attrs[DEFINITION], bool(done or training)


def progress(spec: StudySpec, url: str) -> tuple[int, float | None]:
    """(finished trials, best value of the first objective so far)."""
    study = optuna.load_study(study_name=spec.name, storage=_storage(spec, url))
    trials = counted_trials(study)
    values = [t.values[0] for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not values:
        return len(trials), None
    pick = max if spec.objectives[0].direction == "maximize" else min
    return len(trials), pick(values)


def records(spec: StudySpec, url: str) -> list:
    """Every trial of the stored study as TrialRecords."""
    study = optuna.load_study(study_name=spec.name, storage=_storage(spec, url))
    return trial_records(study, spec)


def fail_orphans(spec: StudySpec, url: str, reason_by_pid: dict[int, str]) -> int:
    """Mark RUNNING trials of dead worker processes (by pid) as failed, with the reason.

    Called by the orchestrator when a worker dies, and on start-up for trials
    left RUNNING by a run that was killed. Returns how many trials were marked.
    """
    storage = _storage(spec, url)
    study = optuna.load_study(study_name=spec.name, storage=storage)
    marked = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        host = trial.user_attrs.get("host")
        if pid in reason_by_pid and host == HOST:
            marked += _mark_interrupted(storage, trial._trial_id, reason_by_pid[pid])
    if marked:
        requeue_interrupted(spec, url)
    return marked


def fail_stale(spec: StudySpec, url: str) -> int:
    """Mark interrupted every RUNNING trial whose machine stopped sending heartbeats
    (:func:`stale_trials`) and enqueue its parameters again, within ``max_retries``.

    Called by every worker between trials and while it waits for trials that run
    elsewhere, and on start-up: the first machine to notice takes the trial. Returns how
    many trials were marked.
    """
    if "://" not in url:  # a journal file: one machine's, no heartbeats
        return 0
    storage = _storage(spec, url)
    study = optuna.load_study(study_name=spec.name, storage=storage)
    return _fail_stale(spec, url, study, storage)


def _fail_stale(
    spec: StudySpec, url: str, study: optuna.Study, storage: optuna.storages.BaseStorage
) -> int:
    """:func:`fail_stale` on a study and storage already open."""
    marked = 0
    for trial, reason in stale_trials(spec, study, storage):
        if _mark_interrupted(storage, trial._trial_id, reason):
            log.warning("trial #%d %s; it will be run again", trial.number, reason)
            marked += 1
    if marked:
        requeue_interrupted(spec, url)
    return marked


def stale_trials(
    spec: StudySpec, study: optuna.Study, storage: optuna.storages.BaseStorage
) -> list[tuple[FrozenTrial, str]]:
    """RUNNING trials whose last heartbeat is older than ``[optuna].grace_seconds``, each
    with the reason it records. A trial of this host whose process is alive is not one:
    its process says more than its heartbeat (a dead one's is found at once by
    :func:`orphaned_trials`). A journal file records no heartbeats: none."""
    grace = heartbeat(spec).grace_s
    ages = heartbeat_ages(storage, study._study_id)
    stale = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        age = ages.get(trial._trial_id)
        if age is None or age <= grace:
            continue
        host, pid = trial.user_attrs.get("host"), trial.user_attrs.get("pid")
        if host == HOST and isinstance(pid, int) and process_alive(pid):
            continue
        reason = (
            f"interrupted: its machine stopped sending heartbeats (host {host or 'unknown'}, "
            f"last seen {age:.0f} s ago)"
        )
        stale.append((trial, reason))
    return stale


def _mark_interrupted(storage: optuna.storages.BaseStorage, trial_id: int, reason: str) -> bool:
    """Mark a RUNNING trial failed and interrupted, with ``reason``; False when it finished
    meanwhile (another machine marked it first, or it ended)."""
    try:
        storage.set_trial_user_attr(trial_id, INTERRUPTED, True)
        storage.set_trial_user_attr(trial_id, "fail_reason", reason)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


#: The reason a RUNNING trial whose worker process is gone records.
ORPHANED = "interrupted: its worker process ended before the trial finished"


def orphaned_trials(study: optuna.Study) -> list[FrozenTrial]:
    """RUNNING trials whose worker process on this host no longer exists (a killed run)."""
    return [
        trial
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if trial.user_attrs.get("host") == HOST
        and isinstance(trial.user_attrs.get("pid"), int)
        and not process_alive(trial.user_attrs["pid"])
    ]


def orphaned_pids(spec: StudySpec, url: str) -> dict[int, str]:
    """Pids on this host that own RUNNING trials but no longer exist (a killed earlier run)."""
    study = optuna.load_study(study_name=spec.name, storage=_storage(spec, url))
    return {trial.user_attrs["pid"]: ORPHANED for trial in orphaned_trials(study)}


def _reason(attrs: dict, rerun_as: int | None, retried: bool, requeued: bool) -> str | None:
    reason = attrs.get("fail_reason")
    if reason and rerun_as is not None:
        return f"{reason} (re-run as trial #{rerun_as})"
    if reason and retried:
        return f"{reason} (retried)"
    if reason and attrs.get(INTERRUPTED) and requeued:
        return f"{reason} (not counted; re-runs exhausted: [study].max_retries)"
    if reason and attrs.get(INTERRUPTED):
        return f"{reason} (not counted; re-run when the study resumes)"
    if reason and attrs.get(STOPPED_STUDY):
        return f"{reason} (stopped the study; not counted, runs again once it is fixed)"
    return reason
