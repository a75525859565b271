"""The README's "Write a dataset plugin" example, built and installed as a real distribution."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example_files() -> dict[str, str]:
    """The files the README shows under '<!-- example-file: NAME -->' markers."""
    text = README.read_text(encoding="utf-8")
    pattern = re.compile(r"<!-- example-file: (\S+) -->\n```\w*\n(.*?)```", re.S)
    return {name: body for name, body in pattern.findall(text)}


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """Build the example as a wheel and install it into a temporary target directory."""
    files = readme_example_files()
    assert set(files) == {"pyproject.toml", "harness_iris.py"}
    source = tmp_path_factory.mktemp("harness-iris")
    for name, body in files.items():
        (source / name).write_text(body, encoding="utf-8")
    wheels = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip"]
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = wheels.glob("harness_iris-1.0-*.whl")
    site = tmp_path_factory.mktemp("site")
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    return site


def _harness(site: Path, *args: str, cwd: Path | None = None):
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("HARNESS_DISABLE_PLUGIN_AUTOLOAD", None)
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env,
        timeout=400, cwd=cwd,
    )


def test_example_plugin_shows_in_harness_plugins(installed_example):
    done = _harness(installed_example, "plugins")
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.strip().startswith("iris"))
    assert "scikit-learn's iris flowers" in line
    assert "harness-iris 1.0" in line


def test_example_plugin_is_used_by_a_study(installed_example, tmp_path):
    study = tmp_path / "iris.toml"
    study.write_text(textwrap.dedent("""
        [study]
        name = "iris"
        trials = 2
        [dataset]
        name = "iris"
        [model]
        name = "dense"
        units = {choice = [8, 16]}
        [train]
        epochs = 3
        learning_rate = 0.01
    """))
    done = _harness(installed_example, "run", str(study), "--no-progress", "--runs-dir",
                    str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "runs" / "iris" / "trials.csv")
    assert len(table) == 2 and (table["state"] == "complete").all()
    assert table["val_accuracy"].between(0, 1).all()
    card = json.loads((tmp_path / "runs" / "iris" / "best_model.json").read_text())
    assert card["dataset"]["preprocessing"]["validation_source"] == "train"
    # A setosa, measured in centimetres as a user would type it: the card's standardize
    # maps it onto the training scale.
    done = _harness(installed_example, "predict", str(tmp_path / "runs" / "iris" / "best.keras"),
                    "5.1,3.5,1.4,0.2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[1].split()[0] == "setosa", done.stdout
