"""Keras layers that models carry inside their ``.keras`` file.

Each is registered with ``keras.saving.register_keras_serializable(package="harness")``
so that a saved model loads with ``keras.models.load_model(path)`` in safe mode
(no ``Lambda`` layers, no pickled code). Keras is imported only when the layers
are first needed: call :func:`custom_layers` (or :func:`register`) before
loading a model that uses them; ``harness predict`` does.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

#: The module of ``keras.applications`` whose ``preprocess_input`` each backbone uses.
PREPROCESS_MODULES = {
    "vgg16": "vgg16",
    "inception_v3": "inception_v3",
    "mobilenet_v2": "mobilenet_v2",
    "resnet50": "resnet50",
    "efficientnet_b0": "efficientnet",
}


@functools.cache
def custom_layers() -> SimpleNamespace:
    """Define and register the harness's serializable layers once; return them by name."""
    import keras  # lazy: imports TensorFlow

    @keras.saving.register_keras_serializable(package="harness")
    class BackbonePreprocess(keras.layers.Layer):
        """[0, 1] images -> what a ``keras.applications`` backbone expects.

        Multiplies by ``input_scale`` (255: back to pixel values), repeats a grey
        channel to RGB, then applies the backbone's own ``preprocess_input``.
        """

        def __init__(self, backbone: str, input_scale: float = 255.0, **kwargs):
            super().__init__(**kwargs)
            if backbone not in PREPROCESS_MODULES:
                raise ValueError(f"unknown backbone {backbone!r}")
            self.backbone = backbone
            self.input_scale = float(input_scale)

        def call(self, inputs):
            x = keras.ops.cast(inputs, "float32") * self.input_scale
            if x.shape[-1] == 1:
                x = keras.ops.repeat(x, 3, axis=-1)
            module = getattr(keras.applications, PREPROCESS_MODULES[self.backbone])
            return module.preprocess_input(x)

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], 3)

        def get_config(self):
            return {
                **super().get_config(),
                "backbone": self.backbone,
                "input_scale": self.input_scale,
            }

    @keras.saving.register_keras_serializable(package="harness")
    class TextVocabulary(keras.layers.Layer):
        """Passes token ids through unchanged; stores the tokenizer in the model's config.

        ``vocabulary[i]`` is the word with id ``i`` (0 is padding); ``sequence_length``
        is the input length (prompts are pre-padded to it). The other settings
        repeat how the dataset split its text (see :func:`harness.textgen.tokenize`),
        so that :func:`harness.textgen.generate` needs nothing but the saved model.
        """

        def __init__(
            self,
            vocabulary,
            sequence_length: int,
            lowercase: bool = True,
            strip_punctuation: bool = True,
            filters: str = "",
            oov_index: int | None = None,
            **kwargs,
        ):
            super().__init__(**kwargs)
            self.vocabulary = [str(word) for word in vocabulary]
            self.sequence_length = int(sequence_length)
            self.lowercase = bool(lowercase)
            self.strip_punctuation = bool(strip_punctuation)
            self.filters = str(filters)
            self.oov_index = None if oov_index is None else int(oov_index)

        def call(self, inputs):
            return inputs

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {
                **super().get_config(),
                "vocabulary": self.vocabulary,
                "sequence_length": self.sequence_length,
                "lowercase": self.lowercase,
                "strip_punctuation": self.strip_punctuation,
                "filters": self.filters,
                "oov_index": self.oov_index,
            }

    @keras.saving.register_keras_serializable(package="harness")
    class SampleCentering(keras.layers.Layer):
        """Subtract each sample's own mean (``ImageDataGenerator(samplewise_center=True)``)."""

        def call(self, inputs):
            x = keras.ops.cast(inputs, "float32")
            axes = tuple(range(1, len(x.shape)))
            return x - keras.ops.mean(x, axis=axes, keepdims=True)

        def compute_output_shape(self, input_shape):
            return input_shape

    @keras.saving.register_keras_serializable(package="harness")
    class WeightedAverage(keras.layers.Layer):
        """The weighted average of several same-shaped outputs (an ensemble's members):
        ``sum(weights[i] * inputs[i])``, the weights summing to 1."""

        def __init__(self, weights, **kwargs):
            super().__init__(**kwargs)
            self.member_weights = [float(w) for w in weights]

        def call(self, inputs):
            outputs = [keras.ops.cast(x, "float32") for x in inputs]
            return sum(w * x for w, x in zip(self.member_weights, outputs, strict=True))

        def compute_output_shape(self, input_shape):
            return input_shape[0]

        def get_config(self):
            return {**super().get_config(), "weights": self.member_weights}

    return SimpleNamespace(
        BackbonePreprocess=BackbonePreprocess,
        TextVocabulary=TextVocabulary,
        SampleCentering=SampleCentering,
        WeightedAverage=WeightedAverage,
    )


def register() -> None:
    """Make the harness's layers known to Keras (call before ``keras.models.load_model``)."""
    custom_layers()
