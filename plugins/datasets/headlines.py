"""``headlines``: next-word prediction on New York Times headlines (Kaggle ``Articles*.csv``).

As in the course's text-generation notebook: every headline except the
literal "Unknown" is lower-cased and stripped of punctuation, split into
words, and every n-gram prefix (``tokens[:i + 1]`` for ``i >= 1``) becomes one
example, pre-padded with 0 to the longest; ``x`` is the prefix without its last
word and ``y`` that last word's id.

Choices worth knowing:

* The vocabulary is ``["", "[UNK]", words by frequency...]`` (index 0 pads,
  1 is out-of-vocabulary, as Keras's ``TextVectorization`` does), built from the
  training headlines only. Prefixes whose target word is out of vocabulary
  (capped by ``max_vocab``, or unseen in training) are dropped: predicting
  "[UNK]" teaches nothing.
* ``limit`` keeps a random sample of headlines drawn with the study's seed.
* ``validation_split`` holds out whole headlines (never n-grams of a training
  headline); the n-grams of one headline are one group (``Dataset.train_groups``).
  ``validation_split = 0`` trains on every headline as the course
  does and validates on the training examples themselves, so ``val_*``
  metrics then measure fit to the training data, not generalisation.
* ``max_sequence_length`` caps the padded length; longer prefixes keep their
  last words (Keras ``pad_sequences``' default ``truncating = "pre"``).
"""

from __future__ import annotations

import csv
import io
import logging
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import harness
from harness.data import Dataset, DatasetInfo, LoadContext, from_arrays
from harness.errors import HarnessError

log = logging.getLogger(__name__)

PAD = ""
OOV = "[UNK]"


class HeadlinesParams(BaseModel):
    """Parameters of the ``headlines`` dataset."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="folder holding the Kaggle NYT Articles*.csv files")
    max_vocab: int | None = Field(
        None, ge=3, description="vocabulary size cap, padding and [UNK] included"
    )
    max_sequence_length: int | None = Field(
        None, ge=2, description="cap on the padded n-gram length (x is one shorter)"
    )
    limit: int | None = Field(
        None, ge=2, description="use a random sample of N headlines, drawn with the study's seed"
    )
    validation_split: float = Field(
        0.1, ge=0.0, lt=1.0,
        description="share of headlines held out; 0 trains on all and validates on them",
    )


def standardize(text: str) -> str:
    """Lower-case and drop punctuation and symbols (every Unicode P* and S* character).

    That covers Python's ``string.punctuation`` that the course strips, and the
    curly quotes and dashes of NYT headlines ("Trump’s" -> "trumps").
    """
    kept = (ch for ch in text.lower() if unicodedata.category(ch)[0] not in "PS")
    return "".join(kept)


def tokenize(text: str) -> list[str]:
    """Standardize and split on whitespace."""
    return standardize(text).split()


def headline_files(folder: Path) -> list[Path]:
    """``folder``'s ``Articles*.csv`` files, sorted; a HarnessError saying what to put where
    when there are none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise HarnessError(
            f"headlines: {folder} is not a folder; set [dataset] path to the folder holding "
            "the Kaggle 'New York Times Comments' Articles*.csv files (e.g. ArticlesApril2017.csv)"
        )
    files = sorted(folder.glob("Articles*.csv"))
    if not files:
        raise HarnessError(
            f"headlines: no Articles*.csv file in {folder}; put the Kaggle 'New York Times "
            "Comments' (aashita/nyt-comments) Articles*.csv files there"
        )
    return files


def check_headlines(params: HeadlinesParams) -> None:
    """Check before a run: the folder holds Articles*.csv files, each with a 'headline'
    column (each file is read once, whole, for its encoding), and enough
    headlines of two words or more (rows are read only until those are found)."""
    needed = _headlines_needed(params)
    found = 0
    for file in headline_files(Path(params.path)):
        for text in _headlines_in(_csv_reader(file)):  # the reader checks the header
            if found >= needed:
                break
            found += len(tokenize(text)) >= 2
    if found < needed:
        _too_few(params, found, needed)


def _headlines_needed(params: HeadlinesParams) -> int:
    return 2 if params.validation_split > 0 else 1


def _too_few(params: HeadlinesParams, found: int, needed: int) -> None:
    raise HarnessError(
        f"headlines: {params.path} has {found} headline(s) of two words or more (besides "
        f'"Unknown"); next-word training with validation_split = {params.validation_split} '
        f"needs {needed} (raise limit, or add Articles*.csv files)"
    )


def _text(file: Path) -> str:
    """The file's text: UTF-8 (Kaggle's), else Windows-1252 with a warning, as decoding a
    Latin-1 file as UTF-8 would turn "naïve" into "nave" without a word. Read once."""
    data = file.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.warning("headlines: %s is not UTF-8; read as Windows-1252 (Latin-1)", file)
        return data.decode("cp1252", errors="replace")


def _csv_reader(file: Path) -> csv.DictReader:
    """A DictReader over ``file``, refused unless it has a 'headline' column."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.DictReader(io.StringIO(_text(file), newline=""))
    if "headline" not in (reader.fieldnames or []):
        columns = ", ".join((reader.fieldnames or [])[:8]) or "none: the file is empty"
        raise HarnessError(
            f"headlines: {file} has no 'headline' column (columns: {columns}); "
            "use the Articles*.csv files of the Kaggle NYT dataset, not the Comments*.csv"
        )
    return reader


def _headlines_in(reader):
    """The reader's headlines, blank ones and the literal "Unknown" left out."""
    for row in reader:
        text = (row.get("headline") or "").strip()
        if text and text != "Unknown":
            yield text


def _iter_headlines(files: list[Path]):
    for file in files:
        yield from _headlines_in(_csv_reader(file))


def read_headlines(folder: Path) -> list[str]:
    """Every headline of ``folder``'s ``Articles*.csv`` (sorted by name), "Unknown" dropped."""
    return list(_iter_headlines(headline_files(folder)))


def build_vocabulary(token_lists: list[list[str]], max_vocab: int | None) -> list[str]:
    """``["", "[UNK]", words...]`` by descending frequency, ties in order of first use."""
    counts = Counter(word for tokens in token_lists for word in tokens)
    words = [word for word, _ in sorted(counts.items(), key=lambda kv: -kv[1])]
    vocabulary = [PAD, OOV, *words]
    return vocabulary[:max_vocab] if max_vocab else vocabulary


def ngram_sequences(
    token_lists: list[list[str]], index: dict[str, int], max_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every prefix ``tokens[:i + 1]`` (``i >= 1``), pre-padded/truncated to ``max_len``.

    Returns ``x`` (``max_len - 1`` ids per row) and ``y`` (the prefix's last id);
    prefixes whose last word is out of vocabulary are dropped.
    """
    rows: list[list[int]] = []
    for tokens in token_lists:
        ids = [index.get(word, 1) for word in tokens]
        for end in range(2, len(ids) + 1):
            if ids[end - 1] == 1:
                continue
            rows.append(ids[max(0, end - max_len) : end])
    sequences = np.zeros((len(rows), max_len), dtype=np.int32)
    for row, ids in enumerate(rows):
        sequences[row, max_len - len(ids) :] = ids
    return sequences[:, :-1], sequences[:, -1]


def load_headlines(params: HeadlinesParams, context: LoadContext) -> Dataset:
    """NYT headlines as next-word examples (x: padded ids, y: next word id)."""
    headlines = read_headlines(Path(params.path))
    if params.limit and params.limit < len(headlines):
        picked = np.random.default_rng(context.seed).choice(len(headlines), params.limit, False)
        headlines = [headlines[i] for i in np.sort(picked)]
    token_lists = [tokens for tokens in map(tokenize, headlines) if len(tokens) >= 2]
    needed = _headlines_needed(params)
    if len(token_lists) < needed:
        _too_few(params, len(token_lists), needed)
    order = np.arange(len(token_lists))
    cut = len(order)
    if params.validation_split > 0:
        order = np.random.default_rng(context.seed).permutation(len(token_lists))
        cut = len(order) - max(1, int(round(len(order) * params.validation_split)))
    train_lists = [token_lists[i] for i in order[:cut]]
    val_lists = [token_lists[i] for i in order[cut:]]
    vocabulary = build_vocabulary(train_lists, params.max_vocab)
    index = {word: i for i, word in enumerate(vocabulary)}
    max_len = max(len(tokens) for tokens in train_lists)
    if params.max_sequence_length:
        max_len = min(max_len, params.max_sequence_length)
    x_train, y_train = ngram_sequences(train_lists, index, max_len)
    groups_train = _ngram_headlines(train_lists, order[:cut], index)
    if val_lists:
        x_val, y_val = ngram_sequences(val_lists, index, max_len)
        groups_val = _ngram_headlines(val_lists, order[cut:], index)
    else:
        x_val, y_val, groups_val = x_train, y_train, groups_train
    if not len(x_train):
        raise HarnessError(
            "headlines: no training example left (every target word is out of vocabulary); "
            "raise max_vocab"
        )
    log.info(
        "headlines: %d headlines, vocabulary %d, sequence length %d, %d train / %d validation "
        "n-grams", len(token_lists), len(vocabulary), max_len, len(x_train), len(x_val),
    )
    info = DatasetInfo(
        name="headlines",
        input_shape=(max_len - 1,),
        task="next_token",
        num_classes=len(vocabulary),
        vocabulary=tuple(vocabulary),
        preprocessing={
            "sequence_length": max_len - 1,
            "padding": "pre",
            "truncating": "pre",
            "lowercase": True,
            "strip_punctuation": True,
            "oov_index": 1,
            "validation": (
                f"{params.validation_split:g} of the headlines (seed {context.seed})"
                if val_lists
                else "the training n-grams (validation_split = 0)"
            ),
            "validation_source": "train",
        },
    )
    return from_arrays(info, x_train, y_train, x_val if len(x_val) else None,
                       y_val if len(y_val) else None, groups_train=groups_train,
                       groups_val=groups_val if len(y_val) else None)


def _ngram_headlines(
    token_lists: list[list[str]], numbers: np.ndarray, index: dict[str, int]
) -> np.ndarray:
    """The group of each row :func:`ngram_sequences` makes of ``token_lists``: the number of
    the headline it comes from (``numbers[i]`` for ``token_lists[i]``), so that folds keep a
    headline's n-grams together."""
    counts = [sum(index.get(word, 1) != 1 for word in tokens[1:]) for tokens in token_lists]
    return np.repeat(np.asarray(numbers, dtype=np.int64), counts)


@harness.hookimpl
def harness_register_datasets(register):
    """Register ``headlines``."""
    register(
        "headlines", load_headlines, params=HeadlinesParams,
        description="NYT headlines (Kaggle Articles*.csv) as next-word n-gram examples",
        tasks=("next_token",), check=check_headlines,
    )
