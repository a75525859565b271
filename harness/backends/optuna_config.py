"""The ``[optuna]`` table of a study file: sampler, pruner, storage and their settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.backends.base import backend_config
from harness.study import StudySpec


class Config(BaseModel):
    """The ``[optuna]`` table of a study file."""

    model_config = ConfigDict(extra="forbid")

    sampler: Literal["tpe", "random", "cmaes", "gp", "nsga2"] = Field(
        "tpe", description="Optuna's sampler (multivariate TPE by default)"
    )
    pruner: Literal["median", "hyperband", "successive_halving", "none"] = Field(
        "median", description="stops unpromising trials at an epoch; none: never"
    )
    storage: str | None = Field(
        None,
        description="an Optuna storage URL (postgresql://, mysql://, sqlite://) or a journal "
        "file; default runs/<name>/optuna.journal",
    )
    startup_trials: int = Field(3, ge=0, description="trials before the pruner and TPE act")
    patience_epochs: int = Field(
        1,
        ge=0,
        description="median pruner: epochs without improvement before a trial below the "
        "median is stopped (0: any epoch that is not its best)",
    )
    warmup_epochs: int | None = Field(
        None,
        ge=0,
        description="epochs before a trial may be pruned; default: half the fewest epochs a "
        "trial can have (at least 1)",
    )


def config(spec: StudySpec) -> Config:
    """The study's validated ``[optuna]`` table."""
    return backend_config(spec, "optuna", Config)
