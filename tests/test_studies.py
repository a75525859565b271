"""Every study in studies/ validates, enqueues the course's values, and runs with --smoke.

Each study runs on small fixture data written here in its dataset's real format
(keras-layout .npz, Kaggle CSV, class folders of JPEGs, Articles*.csv), pointed
to with ``--set dataset.path=...``; pretrained backbones use ``weights = "none"``
since ImageNet weights need a network.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.orchestrator import RunOptions, run_study
from harness.study import load_study
from harness.study_source import read_toml

REPO = Path(__file__).resolve().parents[1]
STUDIES = sorted((REPO / "studies").glob("*.toml"))
COURSE_STUDIES = [p for p in STUDIES if p.stem != "quickstart"]
SEARCHED_BY_THE_COURSE = ("filters", "conv_layers", "units", "epochs", "image_size", "dropout",
                          "fine_tune_learning_rate")


def write_npz(folder: Path, name: str = "mnist") -> Path:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 60).astype(np.uint8)
    folder.mkdir()
    np.savez(folder / f"{name}.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    return folder


def write_sign_csvs(folder: Path) -> Path:
    rng = np.random.default_rng(1)
    folder.mkdir()
    labels = [k for k in range(25) if k != 9]
    for name, rows in (("sign_mnist_train.csv", 48), ("sign_mnist_test.csv", 24)):
        frame = pd.DataFrame(
            rng.integers(0, 256, (rows, 784)), columns=[f"pixel{i}" for i in range(1, 785)]
        )
        frame.insert(0, "label", [labels[i % 24] for i in range(rows)])
        frame.to_csv(folder / name, index=False)
    return folder


def write_image_tree(
    folder: Path, classes: tuple[str, ...], split: str = "validation", file_name=None
) -> Path:
    """Class folders of images; ``file_name(class, i)`` names them as the real data does
    (the studies' ``[dataset] group`` patterns read the names), else ``<class><i>.jpg``."""
    rng = np.random.default_rng(2)
    for part, count in (("train", 4), (split, 2)):
        for index, name in enumerate(classes):
            target = folder / part / name
            target.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (48, 40, 3)) + 60 * index
                file = file_name(name, i) if file_name else f"{name}{i}.jpg"
                Image.fromarray(pixels.astype(np.uint8)).save(target / file)
    return folder


def write_headlines(folder: Path) -> Path:
    folder.mkdir()
    headlines = [
        "Washington DC Is Ready for the Vote", "The Senate Votes on a Budget Plan",
        "Unknown", "A New Plan for the City", "Washington Waits for the Senate",
        "The City Is Ready", "Voters in Washington Weigh the Plan",
    ]
    pd.DataFrame({"headline": headlines, "articleID": range(len(headlines))}).to_csv(
        folder / "ArticlesJan2017.csv", index=False
    )
    return folder


def fixture_for(dataset: str, root: Path) -> Path | None:
    """A small copy of ``dataset`` in its real format, or None when it needs no path."""
    if dataset in ("mnist", "fashion_mnist"):
        return write_npz(root / dataset, dataset)
    if dataset == "sign_language_mnist":
        return write_sign_csvs(root / "sign")
    if dataset == "headlines":
        return write_headlines(root / "nyt")
    if dataset == "rock_paper_scissors":
        return write_image_tree(root / "rps", ("paper", "rock", "scissors"), split="test")
    if dataset == "fruits":
        return write_image_tree(root / "fruits", ("Apple", "Banana", "Orange"), split="test")
    if dataset == "malaria":
        return write_image_tree(  # one patient per slide number: C3P3ThinF_..._cell_3.png
            root / "cells", ("Parasitized", "Uninfected"),
            file_name=lambda name, i: f"C{i}P{i}ThinF_IMG_20150618_{i}_cell_{i}.png",
        )
    if dataset == "horses_or_humans":  # horse01-0.png: two images of each horse
        return write_image_tree(root / "images", ("horses", "humans"),
                                file_name=lambda name, i: f"{name[:-1]}0{i // 2}-{i}.png")
    if dataset in ("cats_vs_dogs", "image_folder"):
        return write_image_tree(root / "images", ("a", "b"))
    return None


def smoke_assignments(study: Path, root: Path) -> dict:
    raw = read_toml(study)
    assignments = {"train.batch_size": 4}
    path = fixture_for(raw["dataset"]["name"], root)
    if path is not None:
        assignments["dataset.path"] = str(path)
    if raw["model"].get("weights") == "imagenet":
        assignments["model.weights"] = "none"
    return assignments


@pytest.mark.parametrize("study", COURSE_STUDIES, ids=[p.stem for p in COURSE_STUDIES])
def test_course_study_runs_with_smoke_budget(study, tmp_path, plugins):
    spec = load_study(study, plugins, smoke_assignments(study, tmp_path))
    assert spec.enqueue, "the course's hand-picked values are the first (enqueued) trial"
    assert spec.space.params, "a course study searches something"
    outcome = run_study(
        spec, plugins,
        RunOptions(runs_dir=tmp_path / "runs", in_process=True, smoke=True, show_progress=False),
    )
    table = outcome.table
    assert len(table) == 1
    assert table.loc[0, "state"] == "complete", table.loc[0, "fail_reason"]
    enqueued = {k: v for k, v in spec.enqueue[0].items() if not k.endswith("epochs")}
    for key, value in enqueued.items():
        if key in table.columns:
            assert table.loc[0, key] == value, f"first trial should run the course's {key}"
    assert (outcome.run_dir / "best.keras").is_file()


def test_course_studies_search_what_the_course_tunes_by_hand(plugins):
    searched = set()
    for study in COURSE_STUDIES:
        raw = read_toml(study)
        head = study.read_text().split("[study]")[0]
        assert "Searched:" in head, f"{study.name}: name the searched parameters in a comment"
        assert "Course" in head, f"{study.name}: say which course task it is"
        path = raw["dataset"].get("path")
        assignments = {"dataset.path": str(REPO)} if path else {}
        spec = load_study(study, plugins, assignments)
        searched |= {p.name.rsplit(".", 1)[-1] for p in spec.space.params}
    missing = [name for name in SEARCHED_BY_THE_COURSE if name not in searched]
    assert not missing, f"no study searches {missing}"


def test_smoke_and_set_from_the_command_line(tmp_path):
    data = write_npz(tmp_path / "fashion", "fashion_mnist")
    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    command = [
        sys.executable, "-m", "harness", "run", str(REPO / "studies" / "fashion_mnist_dense.toml"),
        "--smoke", "--set", f"dataset.path={data}", "--set", "model.units=16",
        "--runs-dir", str(tmp_path / "runs"), "--no-progress",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "runs" / "fashion_mnist_dense-smoke" / "trials.csv")
    assert len(table) == 1 and table.loc[0, "state"] == "complete"
    assert "model.units" not in table.columns, "--set made units a literal"


def test_set_rejects_a_malformed_assignment(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "harness", "validate", str(REPO / "studies" / "linear.toml"),
         "--set", "model.units"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "expected KEY=VALUE" in result.stderr
    assert "Traceback" not in result.stderr


def _profile_changes_the_model(study: Path) -> bool:
    profile = read_toml(study).get("profiles", {}).get("cpu", {})
    return "model" in profile or "image_size" in profile.get("dataset", {})


@pytest.mark.parametrize("study", STUDIES, ids=[p.stem for p in STUDIES])
def test_every_study_declares_a_cpu_profile(study, tmp_path, plugins):
    """Each study has a CPU-sized variant; one that changes the model or the image size
    also runs with the smoke budget (rock-paper-scissors' 4 blocks on 28 pixels, ...)."""
    spec = load_study(study, plugins, smoke_assignments(study, tmp_path), profile="cpu")
    assert spec.name == f"{study.stem}-cpu"
    assert spec.profile == "cpu"
    if not _profile_changes_the_model(study):
        return
    outcome = run_study(
        spec, plugins,
        RunOptions(runs_dir=tmp_path / "runs", in_process=True, smoke=True, show_progress=False,
                   profile="cpu"),
    )
    assert outcome.table.loc[0, "state"] == "complete", outcome.table.loc[0, "fail_reason"]
