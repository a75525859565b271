"""Shared fixtures: plugin manager, study-file writer, in-process study runner."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
#: The plugin file subprocess tests pass with --plugin (see read_probe).
TRIAL_PROBE = Path(__file__).with_name("trial_probe.py")

#: A quick study for subprocess tests: tiny dense models on 200 digits, one epoch.
PROBE_STUDY = """
[study]
name = "{name}"
trials = {trials}
seed = {seed}

[optuna]
sampler = "random"
pruner = "none"

[dataset]
name = "digits"
limit = 200

[model]
name = "dense"
units = {{int = [4, 32]}}

[train]
epochs = 1
"""


class ProbeLine(NamedTuple):
    """One trial start as tests/trial_probe.py recorded it."""

    number: int
    pid: int
    rss_mb: float
    device: str


def read_probe(folder: Path) -> list[ProbeLine]:
    """The trial starts recorded under ``folder`` (the PROBE_DIR), in order."""
    path = folder / "trials.txt"
    if not path.exists():
        return []
    return [
        ProbeLine(int(number), int(pid), float(rss), device)
        for number, pid, rss, device in (
            line.split(" ", 3) for line in path.read_text().splitlines()
        )
    ]


@pytest.fixture
def plugins():
    """A fresh plugin manager with the built-ins (third-party autoload off)."""
    from harness.plugins import load_plugins

    os.environ["HARNESS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        yield load_plugins()
    finally:
        os.environ.pop("HARNESS_DISABLE_PLUGIN_AUTOLOAD", None)


@pytest.fixture
def write_study(tmp_path):
    """Write a study file from (dedented) TOML text; returns its path."""

    def write(text: str, name: str = "study.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def run_study_in_process(tmp_path, plugins):
    """Validate and run a study file in this process; returns the StudyOutcome."""
    from harness.orchestrator import RunOptions, run_study
    from harness.study import load_study

    def run(path: Path, **options):
        options.setdefault("runs_dir", tmp_path / "runs")
        options.setdefault("show_progress", False)
        spec = load_study(path, plugins)
        return run_study(spec, plugins, RunOptions(in_process=True, **options))

    return run


def heavy_imports_after(code: str, heavy: tuple[str, ...]) -> list[str]:
    """Run ``code`` in a fresh interpreter; the modules of ``heavy`` it left imported."""
    check = f"{code}; import sys; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def make_distribution(root: Path, dist: str, module: str, source: str, ep_name: str) -> Path:
    """A real installed-distribution layout (module + .dist-info with an entry point).

    importlib.metadata names a distribution after its folder up to the first ``-`` and
    keeps one per name: give the distributions of one ``root`` different first words."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(f"[harness]\n{ep_name} = {module}\n")
    return root


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not present on this machine")
    return path


def write_mnist_idx(folder: Path, n_train: int = 60, n_test: int = 20) -> Path:
    """The four gzipped IDX files of an MNIST-layout folder: random 28x28 digits whose
    labels are 0..9 in turn (real format, fake pixels)."""
    import gzip
    import struct

    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        header = struct.pack(">IIII", 2051, count, 28, 28)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(header + images.tobytes())
        )
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">II", 2049, count) + labels.tobytes())
        )
    return folder


def processes_in_group(group: int) -> list[str]:
    """The processes (zombies too: nobody reaped them) whose process group is ``group``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        name, rest = text.rsplit(")", 1)
        fields = rest.split()
        if int(fields[2]) == group:
            found.append(f"{stat.parent.name} {fields[0]} {name.split('(', 1)[1]}")
    return found
