"""The ``[kerastuner]`` table of a study file (read when ``[study].backend = "kerastuner"``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.backends.base import backend_config
from harness.study import StudySpec


class Config(BaseModel):
    """The ``[kerastuner]`` table: which KerasTuner tuner searches, and how."""

    model_config = ConfigDict(extra="forbid")

    tuner: Literal["random", "bayesian", "hyperband", "grid"] = Field(
        "random", description="KerasTuner's tuner: RandomSearch, BayesianOptimization, "
        "Hyperband or GridSearch"
    )
    hyperband_factor: int = Field(3, ge=2, description="Hyperband's epoch reduction factor")
    max_consecutive_failed_trials: int = Field(
        3, ge=0, description="stop the search after this many failed trials in a row (0: never)"
    )
    distributed: bool = Field(
        False, description="run KerasTuner's chief/worker mode even with one worker"
    )


def config(spec: StudySpec) -> Config:
    """The study's validated ``[kerastuner]`` table."""
    return backend_config(spec, "kerastuner", Config)
