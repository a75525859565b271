"""The ``headlines`` dataset: Kaggle NYT Articles*.csv -> next-word n-gram examples.

Fixtures are CSVs in the Kaggle column layout (with "Unknown" headlines and
quoted commas); the end-to-end check reads ../shared/data/nyt-headlines.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data
from harness_plugins.datasets.headlines import (
    HeadlinesParams,
    check_headlines,
    load_headlines,
    standardize,
)

from harness.data import LoadContext
from harness.errors import HarnessError

COLUMNS = ["articleID", "articleWordCount", "byline", "documentType", "headline", "keywords",
           "newDesk", "pubDate", "snippet", "webURL"]


def write_articles(folder: Path, headlines: list[str], name: str = "ArticlesJan2017.csv",
                   columns: list[str] = COLUMNS) -> Path:
    """A Kaggle-style Articles CSV whose ``headline`` column holds ``headlines``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for number, text in enumerate(headlines):
            row = {column: f"{column}-{number}" for column in columns}
            row["headline"] = text
            row["keywords"] = "['Politics', 'Budgets, Federal']"
            writer.writerow(row)
    return path


def load(folder: Path, **values):
    return load_headlines(HeadlinesParams(path=str(folder), **values), LoadContext(folder, seed=0))


def test_two_headlines_ngrams_and_padding(tmp_path):
    write_articles(tmp_path, ["The Cat sat.", "Unknown", "The dog’s BONE, the end!"])
    ds = load(tmp_path, validation_split=0)
    vocabulary = ds.info.vocabulary
    # "the" x3, then first-seen order: cat, sat, dogs, bone, end
    assert vocabulary == ("", "[UNK]", "the", "cat", "sat", "dogs", "bone", "end")
    assert ds.info.task == "next_token" and ds.info.num_classes == 8
    assert ds.info.input_shape == (4,)  # longest headline 5 words -> x is 4 long
    assert ds.info.preprocessing == {
        "sequence_length": 4, "padding": "pre", "truncating": "pre",
        "lowercase": True, "strip_punctuation": True, "oov_index": 1,
        "validation": "the training n-grams (validation_split = 0)", "validation_source": "train",
    }
    x = np.stack([x.numpy() for x, _ in ds.train])
    y = np.array([y.numpy() for _, y in ds.train])
    the, cat, sat, dogs, bone, end = 2, 3, 4, 5, 6, 7
    np.testing.assert_array_equal(x, [
        [0, 0, 0, the], [0, 0, the, cat],                 # the cat | sat
        [0, 0, 0, the], [0, 0, the, dogs], [0, the, dogs, bone], [the, dogs, bone, the],
    ])
    np.testing.assert_array_equal(y, [cat, sat, dogs, bone, the, end])
    assert ds.train_size == 6
    # validation_split = 0: the course trains on everything; validation is the same examples
    assert sum(1 for _ in ds.validation) == 6


def test_standardize_like_the_course():
    assert standardize("Trump’s ‘Big’ Win: $5 — Really?!") == "trumps big win 5  really"


def test_unknown_dropped_and_files_merged(tmp_path):
    write_articles(tmp_path, ["Alpha beta", "Unknown", "Unknown"], name="ArticlesFeb2017.csv")
    write_articles(tmp_path, ["Gamma delta epsilon"], name="ArticlesJan2017.csv")
    write_articles(tmp_path, ["ignored words here"], name="CommentsJan2017.csv")
    ds = load(tmp_path, validation_split=0)
    assert set(ds.info.vocabulary[2:]) == {"alpha", "beta", "gamma", "delta", "epsilon"}
    assert ds.train_size == 1 + 2


def test_max_vocab_drops_unknown_targets_and_maps_oov(tmp_path):
    write_articles(tmp_path, ["a b c", "a b d", "a e"])
    ds = load(tmp_path, validation_split=0, max_vocab=4)  # "", [UNK], a, b
    assert ds.info.vocabulary == ("", "[UNK]", "a", "b")
    x = np.stack([x.numpy() for x, _ in ds.train])
    y = np.array([y.numpy() for _, y in ds.train])
    assert set(y.tolist()) == {3}  # only "b" is a known target
    assert len(y) == 2 and (x[:, -1] == 2).all()


def test_max_sequence_length_keeps_last_words(tmp_path):
    write_articles(tmp_path, ["w1 w2 w3 w4 w5 w6"])
    ds = load(tmp_path, validation_split=0, max_sequence_length=3)
    assert ds.info.input_shape == (2,)
    x = np.stack([x.numpy() for x, _ in ds.train])
    vocab = ds.info.vocabulary
    last = [[vocab[i] for i in row] for row in x][-1]
    assert last == ["w4", "w5"]


def test_validation_holds_out_whole_headlines(tmp_path):
    headlines = [f"word{i} shared tail{i}" for i in range(20)]
    write_articles(tmp_path, headlines)
    ds = load(tmp_path, validation_split=0.25)
    assert ds.train_size == 15 * 2
    val_y = [y.numpy() for _, y in ds.validation]
    # words of held-out headlines are unseen in training: only "shared" stays a target
    assert set(val_y) == {ds.info.vocabulary.index("shared")}


def test_limit(tmp_path):
    write_articles(tmp_path, [f"one two three {i}" for i in range(10)])
    assert load(tmp_path, validation_split=0, limit=4).train_size == 4 * 3


def test_errors(tmp_path):
    with pytest.raises(HarnessError, match="is not a folder"):
        load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match=r"no Articles\*\.csv file"):
        load(tmp_path / "empty")
    write_articles(tmp_path / "bad", ["x y"], columns=["articleID", "title"])
    with pytest.raises(HarnessError, match="no 'headline' column"):
        load(tmp_path / "bad")
    write_articles(tmp_path / "unknown", ["Unknown", "Unknown"])
    with pytest.raises(HarnessError, match="two words or more"):  # "Unknown" dropped
        load(tmp_path / "unknown")


def test_the_check_before_a_run_refuses_what_loading_would(tmp_path):
    """An empty CSV, or only "Unknown" headlines, is refused by the cheap check before
    anything is written, not at the first trial."""
    def check(folder: Path, **values) -> None:
        check_headlines(HeadlinesParams(path=str(folder), **values))

    (tmp_path / "empty_file").mkdir()
    (tmp_path / "empty_file" / "ArticlesJan2017.csv").write_text("")
    with pytest.raises(HarnessError, match="no 'headline' column .*the file is empty"):
        check(tmp_path / "empty_file")
    write_articles(tmp_path / "unknown", ["Unknown", "Unknown", "Alone"])
    with pytest.raises(HarnessError, match=r"has 0 headline\(s\) of two words or more"):
        check(tmp_path / "unknown")
    write_articles(tmp_path / "one", ["Unknown", "Two words"])
    with pytest.raises(HarnessError, match="needs 2"):
        check(tmp_path / "one")
    check(tmp_path / "one", validation_split=0.0)  # one headline is enough without validation
    write_articles(tmp_path / "later", ["Fine headline here"], name="ArticlesB.csv")
    write_articles(tmp_path / "later", ["x y", "y z"], name="ArticlesA.csv")
    (tmp_path / "later" / "ArticlesC.csv").write_text("title\nx\n")
    with pytest.raises(HarnessError, match="ArticlesC.csv has no 'headline' column"):
        check(tmp_path / "later")  # every file's header, even after enough headlines


def test_a_latin1_csv_keeps_its_accents(tmp_path, caplog):
    from harness_plugins.datasets.headlines import read_headlines

    folder = tmp_path / "latin"
    path = write_articles(folder, ["Naïve plan works", "Café opens today"])
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))
    with caplog.at_level("WARNING"):
        assert read_headlines(folder) == ["Naïve plan works", "Café opens today"]
    assert "is not UTF-8; read as Windows-1252" in caplog.text
    utf8 = write_articles(tmp_path / "utf8", ["Naïve plan works"])
    utf8.write_bytes(b"\xef\xbb\xbf" + utf8.read_bytes())  # a byte-order mark is not text
    assert read_headlines(tmp_path / "utf8") == ["Naïve plan works"]


def test_headlines_on_shared_data(tmp_path):
    path = shared_data("nyt-headlines")
    ds = load_headlines(HeadlinesParams(path=str(path), limit=300), LoadContext(tmp_path))
    info = ds.info
    assert info.vocabulary[:2] == ("", "[UNK]") and info.num_classes == len(info.vocabulary)
    assert "unknown" not in info.vocabulary[:3]
    x, y = next(iter(ds.train))
    assert x.shape == info.input_shape and x.dtype.name == "int32"
    assert 2 <= int(y) < info.num_classes
    full = load_headlines(
        HeadlinesParams(path=str(path), validation_split=0), LoadContext(tmp_path)
    )
    assert 10_000 < full.info.num_classes < 12_000  # 8,603 headlines, ~10.6k distinct words
