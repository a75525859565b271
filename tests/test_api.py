"""The Python API (``harness.run``, ``harness.load``, ``harness.evaluate_best``): the same
runs, files, figures and one-line errors as the CLI, and a notebook that uses it."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import heavy_imports_after

import harness
from harness.cli import main
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "docs" / "examples" / "python-api.ipynb"
DOCS_PAGE = REPO / "docs" / "python-api.md"

#: Two tiny trials with a test split; the file says 5 trials and 3 epochs, so the flags
#: and ``set=`` values the tests pass are seen to win.
TINY = """
[study]
name = "tiny"
trials = 5
seed = 1

[optuna]
sampler = "random"
pruner = "none"

[dataset]
name = "digits"
limit = 200
test_split = 0.2

[model]
name = "dense"
units = {int = [4, 32]}

[train]
epochs = 3
"""


@pytest.fixture(autouse=True)
def _quiet_plugins(monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "tensorboard")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tiny study run once through ``harness.run`` and once through ``harness run``,
    with the same flags: (result, API runs dir, CLI runs dir, CLI stdout)."""
    root = tmp_path_factory.mktemp("api")
    study = root / "tiny.toml"
    study.write_text(TINY, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
        patch.setenv("HARNESS_DISABLE_PLUGINS", "tensorboard")
        result = harness.run(
            study, trials=2, seed=7, set={"train.epochs": 1}, runs_dir=root / "api",
            in_process=True, progress=False,
        )
        code = main([
            "run", str(study), "--trials", "2", "--seed", "7", "--set", "train.epochs=1",
            "--runs-dir", str(root / "cli"), "--in-process", "--no-progress",
        ])
    assert code == 0
    return result, root / "api", root / "cli"


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_run_returns_the_trials_the_best_and_the_test_figures(runs, capsys):
    result, api_runs, _ = runs
    assert result.exit_code == 0 and not result.interrupted
    assert result.name == "tiny" and result.run_dir == api_runs / "tiny"
    assert len(result.trials) == 2, "trials=2 wins over the file's 5"
    assert set(result.trials["state"]) == {"complete"}
    assert (result.trials["epochs_run"] == 1).all(), "set={'train.epochs': 1} wins over 3"
    best_json = json.loads((result.run_dir / "best.json").read_text())
    assert result.best.number == best_json["trial"]
    assert result.best.values == pytest.approx(best_json["values"])
    assert result.best.params == best_json["params"]
    assert main(["show", "tiny", "--runs-dir", str(api_runs)]) == 0
    shown = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(shown) if line.split()[:2] == ["number", "state"])
    assert int(shown[header + 1].split()[0]) == result.best.number, "show's first row"
    test_json = json.loads((result.run_dir / "test.json").read_text())
    assert result.test == {int(n): m for n, m in test_json["trials"].items()}
    assert result.best.number in result.test
    assert result.best.test == result.test[result.best.number]
    assert result.best_model == result.run_dir / "best.keras" and result.best_model.is_file()
    assert result.best_card == result.run_dir / "best_model.json"


def test_run_writes_the_same_files_and_trials_as_the_cli(runs):
    result, api_runs, cli_runs = runs
    assert _files(api_runs) == _files(cli_runs)
    cli_table = pd.read_csv(cli_runs / "tiny" / "trials.csv")
    params = ["number", "state", "model.units", "epochs_run"]
    pd.testing.assert_frame_equal(
        result.trials[params].sort_values("number").reset_index(drop=True),
        cli_table[params].sort_values("number").reset_index(drop=True),
    )


def test_load_reads_back_what_the_run_returned(runs):
    result, api_runs, _ = runs
    for loaded in (harness.load(result.run_dir), harness.load("tiny", runs_dir=api_runs)):
        pd.testing.assert_frame_equal(loaded.trials, result.trials)
        assert loaded.best == result.best
        assert loaded.test == result.test
        assert (loaded.run_dir, loaded.best_model, loaded.best_card) == (
            result.run_dir, result.best_model, result.best_card
        )
        assert loaded.exit_code is None, "nothing ran"


def test_the_result_shows_its_table_as_text_and_html(runs):
    result, _, _ = runs
    text = repr(result)
    header = f"study tiny: 2 trials (2 complete); best #{result.best.number}: val_accuracy="
    assert text.splitlines()[0].startswith(header)
    assert "model.units" in text and str(result.run_dir) in text
    page = result._repr_html_()
    assert "<table" in page and "model.units" in page and "study tiny" in page


def test_evaluate_best_measures_like_harness_evaluate(runs, capsys):
    result, api_runs, cli_runs = runs
    tested = harness.evaluate_best(result, top=1)
    assert list(tested) == [result.best.number]
    assert tested == harness.load(result.run_dir).test | tested
    assert main(["evaluate", "tiny", "--runs-dir", str(cli_runs)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^trial #\d+: test_accuracy=", out, re.M)
    with pytest.raises(HarnessError, match="^--top must be at least 1, got 0$"):
        harness.evaluate_best(result, top=0)


@pytest.mark.parametrize(
    ("case", "study_text", "options", "flags"),
    [
        ("missing file", None, {}, []),
        ("unknown table", TINY + "\n[modle]\nname = 'dense'\n", {}, []),
        ("unknown key set", TINY, {"set": {"model.unitz": 3}}, ["--set", "model.unitz=3"]),
        ("bad value set", TINY, {"set": {"train.epochs": 0}}, ["--set", "train.epochs=0"]),
        ("bad flag", TINY, {"trials": 0}, ["--trials", "0"]),
    ],
)
def test_a_bad_study_raises_the_clis_one_line_error_and_writes_nothing(
    tmp_path, capsys, case, study_text, options, flags
):
    study = tmp_path / "study.toml"
    if study_text is not None:
        study.write_text(study_text, encoding="utf-8")
    runs_dir = tmp_path / "runs"
    with pytest.raises(HarnessError) as raised:
        harness.run(study, runs_dir=runs_dir, in_process=True, progress=False, **options)
    message = str(raised.value)
    assert "\n" not in message
    assert capsys.readouterr() == ("", ""), "the API prints no error line"
    assert not runs_dir.exists(), f"{case}: nothing is written"
    code = main(["run", str(study), "--runs-dir", str(runs_dir), "--in-process", *flags])
    assert code == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not runs_dir.exists()


def test_a_set_key_that_is_not_dotted_is_refused(tmp_path):
    study = tmp_path / "study.toml"
    study.write_text(TINY, encoding="utf-8")
    with pytest.raises(HarnessError, match=r"expected a dotted key"):
        harness.run(study, runs_dir=tmp_path / "runs", set={"train..epochs": 1})
    with pytest.raises(HarnessError, match=r"path of its \.toml file"):
        harness.run({"study": {"name": "x"}}, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_load_of_a_missing_run_says_where_it_looked(tmp_path, capsys):
    with pytest.raises(HarnessError) as raised:
        harness.load("nothing", runs_dir=tmp_path)
    assert main(["show", "nothing", "--runs-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {raised.value}\n"


def test_import_harness_stays_light():
    heavy = ("pandas", "tensorflow", "keras", "optuna")
    code = "import harness; harness.run; harness.load; harness.StudyResult; dir(harness)"
    assert heavy_imports_after(code, heavy) == []
    assert "evaluate" not in dir(harness) or not callable(getattr(harness, "evaluate", None))


# --------------------------------------------------------------------------- notebook


def _code_cells(notebook: dict) -> list[str]:
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_the_docs_page_shows_the_notebooks_code():
    page = DOCS_PAGE.read_text(encoding="utf-8")
    for source in _code_cells(json.loads(NOTEBOOK.read_text(encoding="utf-8"))):
        assert source.strip() in page, f"docs/python-api.md lacks the notebook cell:\n{source}"


@pytest.fixture
def venv_kernel(tmp_path, monkeypatch):
    """A Jupyter kernel spec running this interpreter (the venv's), found through
    JUPYTER_PATH; returns its name."""
    pytest.importorskip("ipykernel")
    spec = tmp_path / "jupyter" / "kernels" / "harness-venv"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "harness (venv)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "harness-venv"


def test_the_example_notebook_runs_in_a_jupyter_kernel(tmp_path, venv_kernel):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    work = tmp_path / "work"
    (work / "studies").mkdir(parents=True)
    shutil.copy(REPO / "studies" / "quickstart.toml", work / "studies")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, kernel_name=venv_kernel, timeout=600,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute(env={**os.environ})
    outputs = [cell.get("outputs", []) for cell in notebook.cells if cell.cell_type == "code"]
    errors = [o for cell in outputs for o in cell if o["output_type"] == "error"]
    assert not errors, errors
    run_dir = work / "runs" / "quickstart"
    best = json.loads((run_dir / "best.json").read_text())
    table = pd.read_csv(run_dir / "trials.csv")
    assert len(table) == 2

    def shown(cell: list) -> str:
        return "\n".join(
            str(o.get("data", {}).get(kind, "")) + str(o.get("text", ""))
            for o in cell for kind in ("text/plain", "text/html")
        )

    bar = "".join(o.get("text", "") for o in outputs[0] if o["output_type"] == "stream")
    assert "quickstart: 100%" in bar and "2/2 [" in bar, "a progress bar, not trial lines"
    assert "trial #0 complete" not in bar
    assert "IProgress not found" not in bar, "no ipywidgets: tqdm's text bar, without a warning"
    assert "retracing" not in bar, "TensorFlow's notes go to harness.log, as from the CLI"
    result_cell = shown(outputs[0])
    assert "<table" in result_cell, "the result shows its table as HTML"
    assert f"best #{best['trial']}: val_accuracy={best['values']['val_accuracy']:.4g}" in (
        result_cell
    )
    everything = "\n".join(shown(cell) for cell in outputs)
    assert f"BestTrial(number={best['trial']}" in everything
    assert f"'test_accuracy': {best['test']['test_accuracy']}" in everything
    assert "same table: True" in everything
