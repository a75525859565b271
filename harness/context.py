"""What lifecycle hooks receive: the study, one trial, and a trial's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from harness.study import StudySpec


@dataclass
class StudyContext:
    """A running study: its spec and where its files live."""

    spec: StudySpec
    run_dir: Path

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def tensorboard_dir(self) -> Path:
        return self.run_dir / "tb"


@dataclass
class TrialContext:
    """One trial in a worker: its number, resolved parameters and where it may write."""

    study: StudyContext
    number: int
    params: dict[str, Any]
    worker: str = "main"
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"trial-{self.number:04d}"

    @property
    def tensorboard_dir(self) -> Path:
        return self.study.tensorboard_dir / self.name

    def searched_params(self) -> dict[str, Any]:
        """Only the parameters the backend chose (not the study's literals)."""
        names = set(self.study.spec.space.searched_names())
        return {k: v for k, v in self.params.items() if k in names}


@dataclass
class TrialResult:
    """How a trial ended: ``complete``, ``pruned`` or ``failed``, with metrics and reason."""

    state: str
    metrics: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    duration_s: float = 0.0
    fail_reason: str | None = None
    model: Any = None
    #: A cross-validated trial's model is trained on demand: ``refit()`` returns it.
    refit: Any = None
    #: A cross-validated trial's out-of-fold predictions (one row per pooled example).
    out_of_fold: Any = None
    #: A cross-validated trial's K fold models (kept beside its model when it is kept).
    fold_models: Any = None

    def final_model(self) -> Any:
        """The trial's model: ``model``, or the one ``refit`` trains (once) when it is None."""
        if self.model is None and self.refit is not None:
            self.model = self.refit()
            self.refit = None
        return self.model
