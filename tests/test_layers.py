"""The core's layers import one way, bottom to top (../shared/DESIGN.md): a module never
imports a module of a higher layer, not even inside a function. Imports under
``if TYPE_CHECKING:`` are types only and do not count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[1] / "harness"

#: Every module of the core, by layer (0 is the bottom). A new module must be placed here.
LAYERS: dict[int, tuple[str, ...]] = {
    0: (  # the study file -> a typed spec, the data contract, files and small helpers
        "errors", "data", "space", "study", "profiles", "registry", "context", "files", "results",
        "download", "quiet", "logs", "devices", "options", "smoke", "card", "models",
        "layers", "textgen", "_images", "resume", "run_marker", "validation", "study_source",
        "program",
        "ensemble_selection", "noise", "split_summary",
    ),
    1: ("hookspecs", "plugins"),  # the plugin manager and every hook
    2: ("fit_inputs", "features", "pipeline", "trial", "folds", "cross_validation"),  # trials
    3: (  # search backends: a declared contract, each backend its own config
        "backends", "backends.base", "backends.optuna", "backends.kerastuner",
        "backends.kerastuner.config", "backends.kerastuner.space", "backends.kerastuner.store",
        "backends.kerastuner.distributed", "backends.kerastuner.tuner", "backends.journal",
        "backends.optuna_config", "backends.optuna_storage", "backends.keep",
    ),
    4: ("evaluate", "workers", "orchestrator", "progress", "ensemble"),  # processes, supervision
    5: (  # the Python API and the commands over it: read results, never train logic
        # of their own. The package itself (``import harness``: ``hookimpl`` for plugins,
        # ``harness.run``...) is the API's face; it loads ``api`` only on first use.
        "harness", "api",
        "cli", "__main__", "show", "export", "predict", "serve", "report", "report.data",
        "report.diagnosis", "report.plots", "report.html", "ensemble_command",
        "commands", "commands.common", "commands.summary", "commands.run", "commands.worker",
        "commands.validate", "commands.show", "commands.evaluate", "commands.plugins",
    ),
}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(HARNESS).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "harness"


def harness_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a harness module, outside TYPE_CHECKING blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for inner in node.body for child in ast.walk(inner))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "harness" and node.level == 0:
            names = [  # ``from harness import api`` imports the module harness.api
                f"harness.{alias.name}" if _is_module(alias.name) else "harness"
                for alias in node.names
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name == "harness" or name.startswith("harness."):
                found.append((node.lineno, name.removeprefix("harness.") or "harness"))
    return found


def _is_module(name: str) -> bool:
    return (HARNESS / f"{name}.py").is_file() or (HARNESS / name / "__init__.py").is_file()


MODULES = sorted(HARNESS.rglob("*.py"))


def test_every_core_module_has_a_layer():
    missing = [module_name(path) for path in MODULES if module_name(path) not in LAYER_OF]
    assert not missing, f"place these modules in a layer of tests/test_layers.py: {missing}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_no_module_imports_a_layer_above_its_own(path):
    layer = LAYER_OF.get(module_name(path))
    if layer is None:
        pytest.skip("not placed yet (test_every_core_module_has_a_layer fails)")
    upward = [
        f"line {line}: {target} (layer {LAYER_OF[target]})"
        for line, target in harness_imports(path)
        if target in LAYER_OF and LAYER_OF[target] > layer
    ]
    assert not upward, f"{module_name(path)} (layer {layer}) imports upward: {upward}"


def test_the_check_sees_imports_inside_functions(tmp_path):
    """The checker would catch the edge the renovation removed (study calling a backend)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from harness.cli import main\n"
        "def f():\n    from harness.backends.base import load_backend\n",
        encoding="utf-8",
    )
    assert harness_imports(sample) == [(5, "backends.base")]


def test_the_check_sees_a_module_imported_from_the_package(tmp_path):
    """``from harness import api`` imports the module ``harness.api``, not the package."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from harness import api, hookimpl\n", encoding="utf-8")
    assert harness_imports(sample) == [(2, "api"), (2, "harness")]
