"""Choosing ensemble weights from validation predictions (numpy only, no TensorFlow).

Greedy ensemble selection with replacement (Caruana et al., ICML 2004, as
auto-sklearn's ``EnsembleSelection`` does): start from nothing and, ``rounds`` times,
add the member whose addition makes the averaged prediction score best on the
validation split; a member may be added again. A member's weight is the share of
rounds that picked it. ``average`` gives every member the same weight.

Predictions are what the models output: probabilities of class 1 (binary, shape
``(n, 1)``), per-class probabilities (multiclass), or numbers (regression).
"""

from __future__ import annotations

import math

import numpy as np

#: Probabilities are clipped as Keras clips them before a log loss.
EPSILON = 1e-7
#: What each task can be selected on (the objective without ``val_``); anything else
#: selects on the loss.
SCORES = {
    "binary": ("accuracy", "loss"),
    "multiclass": ("accuracy", "loss"),
    "regression": ("loss", "mse", "mae"),
}
HIGHER_IS_BETTER = {"accuracy"}


def figures(prediction: np.ndarray, labels: np.ndarray, task: str) -> dict[str, float]:
    """The figures Keras reports for ``task`` (accuracy and log loss of a classifier; mse,
    its loss, and mae of a regression), computed from predictions."""
    if task == "regression":
        error = prediction.reshape(-1) - labels.reshape(-1).astype("float64")
        mse = float(np.mean(error**2))
        return {"loss": mse, "mse": mse, "mae": float(np.mean(np.abs(error)))}
    labels = labels.reshape(-1).astype("int64")
    if task == "binary":
        p1 = np.clip(prediction.reshape(-1).astype("float64"), EPSILON, 1 - EPSILON)
        loss = -np.mean(labels * np.log(p1) + (1 - labels) * np.log(1 - p1))
        correct = (p1 > 0.5).astype("int64") == labels
    else:
        p = np.clip(prediction.astype("float64"), EPSILON, 1.0)
        loss = -np.mean(np.log(p[np.arange(len(labels)), labels]))
        correct = np.argmax(prediction, axis=1) == labels
    return {"accuracy": float(np.mean(correct)), "loss": float(loss)}


def selection_score(objective: str, task: str) -> str:
    """The figure greedy selection optimises: the study's objective when the task has it
    (``val_accuracy`` -> ``accuracy``), else the loss."""
    name = objective.removeprefix("val_")
    return name if name in SCORES.get(task, ()) else "loss"


def _key(found: dict[str, float], score: str) -> tuple[float, float]:
    """Sort key, smaller is better: the score first, then the loss to break its ties."""
    main = -found[score] if score in HIGHER_IS_BETTER else found[score]
    return main, found["loss"]


def greedy_weights(
    predictions: list[np.ndarray], labels: np.ndarray, task: str, score: str, rounds: int = 50
) -> list[float]:
    """Caruana's selection with replacement over ``predictions`` (best single model first:
    a tie goes to the earlier member). Returns one weight per member, summing to 1."""
    counts = [0] * len(predictions)
    total = np.zeros_like(predictions[0], dtype="float64")
    for step in range(1, rounds + 1):
        keys = [
            _key(figures((total + p) / step, labels, task), score) for p in predictions
        ]
        chosen = min(range(len(predictions)), key=lambda i: (keys[i], i))
        counts[chosen] += 1
        total += predictions[chosen]
    return [count / rounds for count in counts]


def combine(predictions: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """The weighted average of the members' predictions."""
    return sum(w * p.astype("float64") for w, p in zip(weights, predictions, strict=True))


def classes(prediction: np.ndarray, task: str) -> np.ndarray:
    """The predicted class of each example."""
    if task == "binary":
        return (prediction.reshape(-1) > 0.5).astype("int64")
    return np.argmax(prediction, axis=1)


def disagreement(predictions: list[np.ndarray], task: str) -> float | None:
    """How often two members differ, averaged over every pair: the share of examples
    they predict different classes for (classifiers), or the mean absolute difference
    of their outputs (regression). None with fewer than two members."""
    if len(predictions) < 2:
        return None
    pairs = []
    for i in range(len(predictions)):
        for j in range(i + 1, len(predictions)):
            if task == "regression":
                pairs.append(np.mean(np.abs(predictions[i] - predictions[j])))
            else:
                differ = classes(predictions[i], task) != classes(predictions[j], task)
                pairs.append(np.mean(differ))
    return float(np.mean(pairs))


def paired_accuracy_gap(
    first: np.ndarray, second: np.ndarray, labels: np.ndarray, task: str
) -> tuple[float, float]:
    """Accuracy of ``first`` minus that of ``second`` on the same examples, and the
    standard error of that difference (from the examples only one of them gets right)."""
    labels = labels.reshape(-1).astype("int64")
    a = classes(first, task) == labels
    b = classes(second, task) == labels
    n = len(labels)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    gap = (only_a - only_b) / n
    variance = (only_a + only_b) / n - gap**2
    return gap, math.sqrt(max(variance, 0.0) / n)


def gap_line(gap: float, error: float) -> str:
    """A paired accuracy gap with its standard error, called noise when under two of them."""
    verdict = "within noise" if abs(gap) < 2 * error else ("better" if gap > 0 else "worse")
    return (f"ensemble minus best single on test accuracy: {gap:+.4f} (standard error "
            f"{error:.4f}: {verdict})")
