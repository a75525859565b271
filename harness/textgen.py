"""Next-word text generation from a saved model alone (the course's ``generate_headline``).

A next-token model keeps its tokenizer in a :class:`TextVocabulary` layer
(see :mod:`harness.layers`): the word list (id 0 is padding), the input length
and how text was split. Nothing else is needed to turn a prompt into words.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import numpy as np

from harness.errors import HarnessError


def vocabulary_layer(model: Any):
    """The model's ``TextVocabulary`` layer, searching nested models too; None if it has none."""
    for layer in model.layers:
        if type(layer).__name__ == "TextVocabulary":
            return layer
        if hasattr(layer, "layers"):
            found = vocabulary_layer(layer)
            if found is not None:
                return found
    return None


def standardize(text: str, vocab_layer: Any) -> str:
    """Lower-case, turn ``filters`` characters into spaces and drop punctuation and
    symbols (Unicode categories P* and S*), as the layer's settings say."""
    if vocab_layer.lowercase:
        text = text.lower()
    if vocab_layer.filters:
        text = text.translate(str.maketrans(vocab_layer.filters, " " * len(vocab_layer.filters)))
    if vocab_layer.strip_punctuation:
        text = "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PS")
    return text


def tokenize(text: str, vocab_layer: Any) -> list[int]:
    """Word ids of ``text``; unknown words become the OOV id, or are dropped without one."""
    index = {word: i for i, word in enumerate(vocab_layer.vocabulary) if i > 0}
    ids = []
    for word in standardize(text, vocab_layer).split():
        if word in index:
            ids.append(index[word])
        elif vocab_layer.oov_index is not None:
            ids.append(vocab_layer.oov_index)
    return ids


def pre_pad(ids: list[int], length: int) -> np.ndarray:
    """One row of ``length`` ids, zero-padded (or truncated) at the front like ``pad_sequences``."""
    row = np.zeros((1, length), dtype="int32")
    kept = ids[-length:] if length else []
    if kept:
        row[0, length - len(kept):] = kept
    return row


def generate(model: Any, prompt: str, words: int = 1, title: bool = True) -> str:
    """Append ``words`` greedily predicted words to ``prompt``; title-case it like the course."""
    layer = vocabulary_layer(model)
    if layer is None:
        raise HarnessError(
            "this model has no TextVocabulary layer, so it cannot turn words into ids; "
            "generate text with a model built by lstm_text"
        )
    if words < 0:
        raise HarnessError(f"--words must be 0 or more, got {words}")
    text = prompt.strip()
    for _ in range(words):
        row = pre_pad(tokenize(text, layer), layer.sequence_length)
        probabilities = np.array(model(row, training=False), dtype="float64")[0]
        probabilities[0] = -np.inf  # padding and "unknown word" are never generated
        if layer.oov_index is not None:
            probabilities[layer.oov_index] = -np.inf
        text = f"{text} {layer.vocabulary[int(np.argmax(probabilities))]}".strip()
    return text.title() if title else text
