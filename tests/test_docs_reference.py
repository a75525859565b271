"""The generated reference pages (docs/gen_reference.py, run by MkDocs at every build)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

GENERATOR = Path(__file__).resolve().parents[1] / "docs" / "gen_reference.py"


@pytest.fixture(scope="module")
def gen_reference():
    spec = importlib.util.spec_from_file_location("gen_reference", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outside_code(line: str) -> str:
    return re.sub(r"`[^`]*`", "", line)


def test_cli_reference_shows_angle_brackets_as_text(gen_reference):
    page = gen_reference.cli_page()
    rows = [line for line in page.splitlines() if line.startswith("|")]
    assert any("&lt;name&gt;-&lt;NAME&gt;" in row for row in rows)
    tags = [row for row in rows if re.search(r"</?[A-Za-z]", _outside_code(row))]
    assert tags == []


def test_cli_reference_describes_every_argument(gen_reference):
    page = gen_reference.cli_page()
    validate = page.split("## harness validate", 1)[1].split("\n## ", 1)[0]
    assert "| `study` | study file (TOML) to check |" in validate
    empty = [line for line in page.splitlines() if re.match(r"\| `[^`]+` \|\s*\|$", line)]
    assert empty == []


def test_cli_reference_refuses_an_undescribed_argument(gen_reference):
    import argparse

    parser = argparse.ArgumentParser(prog="harness demo")
    parser.add_argument("study")
    with pytest.raises(ValueError, match="harness demo study: no help text"):
        gen_reference._arguments_table(parser)
