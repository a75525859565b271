"""KerasTuner backend: random, bayesian, hyperband and grid oracles; trials run through
:func:`harness.trial.run_trial`.

KerasTuner only proposes hyperparameters and receives results; data, model
building, fitting, callbacks, TensorBoard and the results table are the harness's,
the same as with Optuna. The modules follow KerasTuner's own engine/ vs distribute/
split:

* :mod:`~harness.backends.kerastuner.config`: the ``[kerastuner]`` table's model
  (``Config``, this backend's own settings);
* :mod:`~harness.backends.kerastuner.space`: the study's search space, checked and
  declared as ``keras_tuner.HyperParameters``;
* :mod:`~harness.backends.kerastuner.store`: the project directory, the harness's
  per-trial records in it, and reading results from them;
* :mod:`~harness.backends.kerastuner.distributed`: chief/worker mode (the worker
  slots, each process's role, the chief's gRPC service);
* :mod:`~harness.backends.kerastuner.tuner`: preparing the project, the tuner and
  oracle classes, and the search loop of ``run_worker``.

This package exposes the backend contract (:class:`harness.backends.base.SearchBackend`)
and nothing else. Nothing here imports TensorFlow (nor ``keras_tuner``, which imports
it) until ``run_worker`` runs: the orchestrating process stays light.
"""

from harness.backends.kerastuner.config import Config
from harness.backends.kerastuner.distributed import distributed_slots, join_storage
from harness.backends.kerastuner.space import check_spec
from harness.backends.kerastuner.store import (
    RERUNS_INTERRUPTED,
    fail_orphans,
    orphaned_pids,
    progress,
    records,
    search_over,
    stored_definition,
)
from harness.backends.kerastuner.tuner import prepare, run_worker

__all__ = [
    "RERUNS_INTERRUPTED",
    "Config",
    "check_spec",
    "distributed_slots",
    "join_storage",
    "fail_orphans",
    "orphaned_pids",
    "prepare",
    "progress",
    "records",
    "run_worker",
    "search_over",
    "stored_definition",
]
