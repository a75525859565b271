"""``linear``: one Dense layer on the input (the course's first model, y = 2x - 1)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

import harness
from harness.data import DatasetInfo
from harness.errors import TrialFailed
from harness.models import output_layer


class LinearParams(BaseModel):
    """The ``linear`` builder takes no parameters: the task fixes its single layer."""

    model_config = ConfigDict(extra="forbid")


def build_linear(params: LinearParams, info: DatasetInfo):
    """Input [-> Flatten] -> Dense(task output): linear regression, logistic or softmax regression.

    The course's ``keras.Sequential([keras.layers.Dense(units=1, input_shape=[1])])``
    is this model on a regression dataset with ``input_shape = (1,)``.
    """
    import keras  # lazy: imports TensorFlow

    if info.task == "next_token":
        raise TrialFailed("linear does not fit a next_token dataset; use the lstm_text model")
    inputs = keras.Input(shape=info.input_shape, name="input")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(info.input_shape) > 1 else inputs
    return keras.Model(inputs, output_layer(info)(x), name="linear")


@harness.hookimpl
def harness_register_models(register):
    """Register ``linear``."""
    register("linear", build_linear, params=LinearParams,
             description="a single Dense layer on the input (the course's y = 2x - 1 model)")
