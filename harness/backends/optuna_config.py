"""The ``[optuna]`` table of a study file: sampler, pruner, storage and their settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.backends.base import backend_config
from harness.study import StudySpec


class Config(BaseModel):
    """The ``[optuna]`` table of a study file."""

    model_config = ConfigDict(extra="forbid")

    sampler: Literal["tpe", "random", "cmaes", "gp", "nsga2"] = Field(
        "tpe", description="Optuna's sampler (multivariate TPE by default)"
    )
    pruner: Literal["median", "hyperband", "successive_halving", "none"] = Field(
        "hyperband",
        description="stops unpromising trials at an epoch (hyperband: rungs at 1, 3, 9, ... "
        "epochs); none: never",
    )
    storage: str | None = Field(
        None,
        description="an Optuna storage URL (postgresql://, mysql://, sqlite://) or a journal "
        "file; default runs/<name>/optuna.journal",
    )
    heartbeat_seconds: int = Field(
        30,
        ge=1,
        description="database storages: how often a running trial records that its machine "
        "is alive",
    )
    grace_seconds: int = Field(
        120,
        ge=1,
        description="database storages: a running trial with no heartbeat for this long is "
        "taken as lost with its machine, marked interrupted and run again by the others",
    )
    startup_trials: int = Field(
        3, ge=0, description="trials before TPE models the results (and the median pruner acts)"
    )
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

    @model_validator(mode="after")
    def _grace_outlasts_heartbeats(self) -> Config:
        if self.grace_seconds <= self.heartbeat_seconds:
            raise ValueError(
                f"grace_seconds ({self.grace_seconds}) must be longer than heartbeat_seconds "
                f"({self.heartbeat_seconds}): a live trial would be taken as lost between two "
                "heartbeats"
            )
        return self


def config(spec: StudySpec) -> Config:
    """The study's validated ``[optuna]`` table."""
    return backend_config(spec, "optuna", Config)
