"""A trial under k-fold cross-validation (``[study].folds = K``): K fits, one per fold.

Each fold builds the trial's model afresh (same seed), fits it on the other folds and
validates on its own (:mod:`harness.folds`). The trial's figures are the mean over
the folds of each final metric, with the spread of each objective
(``<objective>_std``, the standard deviation over folds) and ``folds``; its curves
(``history``) are the mean curve per epoch.

Pruning works per fold, not per epoch: after fold k the running mean of the folds
so far is reported as step k, so a configuration that does badly on its first folds
is stopped before it spends the rest. Epoch curves of different trials are not
comparable when the epochs are searched, and a fold is the unit of evidence.

The trial's model, the one kept, saved as ``best.keras`` and measured on the test
split, is the configuration refitted on the whole training data (all folds), for
the mean number of epochs the folds ran. It is trained only when a model is needed
(the trial is among the kept ones). Each fold model's predictions on its own fold
(out-of-fold predictions) and the fold models themselves are kept with it.
"""

from __future__ import annotations

import statistics

import numpy as np

from harness.fit_inputs import component_params
from harness.folds import cached_folds


class FoldReport:
    """The running figures of a cross-validated trial, fold by fold."""

    def __init__(self, objectives: list[str]):
        self.objectives = objectives
        self.folds: list[dict[str, float]] = []
        self.histories: list[dict[str, list[float]]] = []

    def add(self, metrics: dict[str, float], history: dict[str, list[float]]) -> None:
        self.folds.append(metrics)
        self.histories.append(history)

    def metrics(self) -> dict[str, float]:
        """Each metric's mean over the folds so far, each objective's spread, the count."""
        names = [n for n in self.folds[0] if all(n in fold for fold in self.folds)]
        found = {n: float(statistics.fmean(f[n] for f in self.folds)) for n in names}
        for name in self.objectives:
            values = [f[name] for f in self.folds if name in f]
            if values:
                found[f"{name}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        found["folds"] = float(len(self.folds))
        return found

    def history(self) -> dict[str, list[float]]:
        """The mean curve per epoch (over the folds that ran that epoch)."""
        mean: dict[str, list[float]] = {}
        for name in self.histories[0] if self.histories else ():
            curves = [h[name] for h in self.histories if name in h]
            longest = max(len(c) for c in curves)
            mean[name] = [
                float(statistics.fmean(c[e] for c in curves if len(c) > e)) for e in range(longest)
            ]
        return mean


def cross_validate(trial, pipeline, reporter, guard, final_metrics, tracker_callbacks, report):
    """Fit the trial once per fold, adding each fold's figures to ``report`` (a
    :class:`FoldReport`); returns ``(out_of_fold, fold_models)``: each pooled example's
    prediction by the model that did not train on it, and the K fold models.

    ``guard(history)`` makes the per-epoch callback (NaN loss, missing objective) that
    fills ``history``; ``final_metrics(model, validation, history)`` measures a fold.
    After each fold the running mean is reported to ``reporter`` as step k, which may
    raise TrialPruned (never after the last fold).
    """
    spec = trial.study.spec
    folds = cached_folds(pipeline.dataset, spec.study.folds, pipeline.seed)
    out_of_fold: np.ndarray | None = None
    fold_models = []
    for fold in folds:
        pipeline.prepare()  # a fresh model, seeded as the trial's
        pipeline.dataset = fold.dataset
        history: dict[str, list[float]] = {}
        callbacks = [
            *(tracker_callbacks if fold.index == 0 else ()),  # one fold's curves per run
            *(
                cb.component.function(component_params(cb, trial.params), trial)
                for cb in spec.callbacks
            ),
            guard(history),
        ]
        inputs = pipeline.fit_inputs()
        pipeline.fit(inputs, callbacks)
        metrics = final_metrics(inputs.model, inputs.validation, history)
        metrics["epochs_run"] = float(len(next(iter(history.values()), [])))
        report.add(metrics, history)
        predictions = np.asarray(inputs.model.predict(inputs.validation, verbose=0))
        if out_of_fold is None:
            out_of_fold = np.zeros((len(fold.train_rows) + len(fold.validation_rows),
                                    *predictions.shape[1:]), dtype="float32")
        out_of_fold[fold.validation_rows] = predictions
        fold_models.append(inputs.model)
        last = fold.index == len(folds) - 1
        reporter.report(fold.index, report.metrics(), last=last)
    return out_of_fold, fold_models


def refit_on_all(pipeline, epochs_run: float):
    """A function that trains the trial's configuration on the whole training data (the
    dataset's training and validation splits) for ``epochs_run`` epochs and returns the
    model: the cross-validated trial's own model, trained when it is first needed."""

    def refit():
        pipeline.prepare()
        epochs = pipeline.train.epochs
        ran = int(round(epochs_run))
        if pipeline.built.fine_tune is None and 0 < ran < epochs:
            epochs = ran  # a stopping callback ended the folds early
        pipeline.fit(pipeline.fit_inputs(merge_validation=True), [], epochs)
        return pipeline.built.model

    return refit
