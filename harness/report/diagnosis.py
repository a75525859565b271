"""What a trial's learning curves say: overfitting, still improving, or flat."""

from __future__ import annotations

from dataclasses import dataclass

#: A validation loss this much (relative) above its minimum counts as rising.
RISE_TOLERANCE = 0.01


@dataclass
class Diagnosis:
    """What a trial's learning curves say: a verdict and a sentence for people."""

    verdict: str  # overfitting, still-improving, plateau, no-validation, no-history
    text: str
    gap: float | None = None


def diagnose(history: dict[str, list[float]]) -> Diagnosis:
    """Read train vs validation loss per epoch: overfitting, still improving or flat.

    Overfitting: validation loss reaches its minimum before the last epoch and
    rises after it while training loss keeps falling. The gap is validation
    minus training loss at the last epoch.
    """
    loss = [float(v) for v in history.get("loss", [])]
    val = [float(v) for v in history.get("val_loss", [])]
    if not loss:
        return Diagnosis("no-history", "no per-epoch history was recorded")
    epochs = len(loss)
    if not val:
        return Diagnosis(
            "no-validation",
            f"no validation curve; training loss {loss[0]:.4g} -> {loss[-1]:.4g} "
            f"over {epochs} epoch{'s' if epochs != 1 else ''}",
        )
    n = min(len(loss), len(val))
    loss, val = loss[:n], val[:n]
    gap = val[-1] - loss[-1]
    parts = []
    accuracy = _accuracy_gap(history)
    if n == 1:
        text = f"only 1 epoch, no trend to read; gap at the end {gap:.4g}"
        return Diagnosis("plateau", text + accuracy, gap)
    best = min(range(n), key=val.__getitem__)
    rises = val[-1] > val[best] + max(abs(val[best]) * RISE_TOLERANCE, 1e-4)
    if best < n - 1 and rises and loss[-1] < loss[best]:
        parts.append(
            f"validation loss rises from epoch {best + 1} (lowest {val[best]:.4g}, "
            f"{val[-1]:.4g} at epoch {n}) while training loss falls "
            f"({loss[best]:.4g} -> {loss[-1]:.4g}); gap at the end {gap:.4g}. "
            f"Overfitting: stop near epoch {best + 1}, or add dropout, regularization or "
            "augmentation"
        )
        verdict = "overfitting"
    elif best == n - 1:
        parts.append(
            f"validation loss still falls at the last epoch ({val[-2]:.4g} -> {val[-1]:.4g}); "
            f"gap at the end {gap:.4g}. No sign of overfitting yet: more epochs may help"
        )
        verdict = "still-improving"
    else:
        parts.append(
            f"validation loss is flat after epoch {best + 1} (lowest {val[best]:.4g}, "
            f"{val[-1]:.4g} at epoch {n}); gap at the end {gap:.4g}"
        )
        verdict = "plateau"
    if gap < 0:
        parts.append(
            "validation loss is below training loss (dropout and augmentation act only in "
            "training)"
        )
    return Diagnosis(verdict, "; ".join(parts) + accuracy, gap)


def _accuracy_gap(history: dict[str, list[float]]) -> str:
    train, val = history.get("accuracy"), history.get("val_accuracy")
    if not train or not val:
        return ""
    return (
        f". Accuracy at the end: training {train[-1]:.4f}, validation {val[-1]:.4f} "
        f"(gap {train[-1] - val[-1]:+.4f})"
    )
