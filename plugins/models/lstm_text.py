"""``lstm_text``: Embedding -> LSTM (x1-3, optionally bidirectional) -> Dropout -> next word.

The course's headline generator is the default: ``Embedding(total_words, 10)``,
``LSTM(100)``, ``Dropout(0.1)``, ``Dense(total_words, softmax)``. The model
starts with a :class:`harness.layers` ``TextVocabulary`` layer that stores the
dataset's word list and tokenizer settings, so :func:`generate` works from the
saved ``.keras`` file alone.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

import harness
from harness.data import DatasetInfo
from harness.errors import TrialFailed
from harness.layers import custom_layers
from harness.models import output_layer
from harness.textgen import generate

__all__ = ["LstmTextParams", "build_lstm_text", "generate"]


class LstmTextParams(BaseModel):
    """Parameters of the ``lstm_text`` builder."""

    model_config = ConfigDict(extra="forbid")

    embedding_dim: int = Field(10, ge=1, le=4096, description="size of each word vector")
    lstm_units: int = Field(100, ge=1, le=8192, description="units of each LSTM layer")
    lstm_layers: int = Field(1, ge=1, le=3, description="stacked LSTM layers")
    bidirectional: bool = Field(False, description="read the sequence both ways")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout before the output layer")
    mask_padding: bool = Field(False, description="mask id 0 (padding) in the Embedding")


def tokenizer_settings(info: DatasetInfo) -> dict:
    """How the dataset split its text, from ``info.preprocessing`` (the ``headlines`` keys:
    ``lowercase``, ``strip_punctuation``, ``oov_index``; or Keras ``Tokenizer``-style
    ``lower``, ``filters``, ``oov_token``)."""
    pre = info.preprocessing or {}
    oov_index = pre.get("oov_index")
    if oov_index is None and pre.get("oov_token") in info.vocabulary:
        oov_index = info.vocabulary.index(pre["oov_token"])
    return {
        "lowercase": bool(pre.get("lowercase", pre.get("lower", True))),
        "strip_punctuation": bool(pre.get("strip_punctuation", "filters" not in pre)),
        "filters": str(pre.get("filters", "")),
        "oov_index": oov_index,
    }


def build_lstm_text(params: LstmTextParams, info: DatasetInfo):
    """TextVocabulary -> Embedding -> LSTM layers -> Dropout -> Dense(vocabulary, softmax)."""
    import keras  # lazy: imports TensorFlow

    if info.task != "next_token" or not info.vocabulary:
        raise TrialFailed(
            f"lstm_text needs a next_token dataset with a vocabulary, got a {info.task} dataset"
        )
    if len(info.input_shape) != 1:
        raise TrialFailed(f"lstm_text needs sequences of token ids, got shape {info.input_shape}")
    vocab_size = len(info.vocabulary)
    if info.num_classes != vocab_size:
        raise TrialFailed(
            f"the dataset has {info.num_classes} classes but {vocab_size} words; "
            "a next_token dataset predicts one class per word"
        )
    inputs = keras.Input(shape=info.input_shape, dtype="int32", name="tokens")
    x = custom_layers().TextVocabulary(
        info.vocabulary, sequence_length=info.input_shape[0], name="vocabulary",
        **tokenizer_settings(info),
    )(inputs)
    x = keras.layers.Embedding(
        vocab_size, params.embedding_dim, mask_zero=params.mask_padding, name="embedding"
    )(x)
    for index in range(1, params.lstm_layers + 1):
        last = index == params.lstm_layers
        lstm = keras.layers.LSTM(params.lstm_units, return_sequences=not last, name=f"lstm_{index}")
        if params.bidirectional:
            lstm = keras.layers.Bidirectional(lstm, name=f"bidirectional_{index}")
        x = lstm(x)
    if params.dropout:
        x = keras.layers.Dropout(params.dropout, name="dropout")(x)
    return keras.Model(inputs, output_layer(info)(x), name="lstm_text")


@harness.hookimpl
def harness_register_models(register):
    """Register ``lstm_text``."""
    register("lstm_text", build_lstm_text, params=LstmTextParams,
             description="Embedding + LSTM next-word model that keeps its vocabulary (generation)")
