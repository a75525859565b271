"""``harness export STUDY``: the trial table as CSV/JSON/Parquet, and the best model.

``--format csv|json|parquet [--output PATH]`` writes the trial table (best
first, the columns of ``trials.csv``). JSON is a list of one object per trial,
missing values as ``null``. Parquet needs pyarrow (``pip install "harness[parquet]"``).

``--best-model PATH`` copies ``runs/<study>/best.keras`` to ``PATH`` (a
``.keras`` file) and writes its model card next to it (``PATH`` with a
``.json`` suffix): dataset, input shape, task, class names, preprocessing,
parameters and metrics.

``--best-model PATH --retrain`` rebuilds the best trial's model from its
parameters and trains it on training + validation data for as many epochs as
the trial trained (its ``epochs_run``; a fine-tuning phase runs as the builder
declares it). Stopping callbacks are not used (there is no validation data left
to watch), so the card has training metrics only, next to the trial's
validation metrics from the search.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import math
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness
from harness.context import StudyContext, TrialContext
from harness.errors import HarnessError
from harness.files import replacing
from harness.pipeline import TrialPipeline
from harness.plugins import load_plugins
from harness.quiet import start_tensorflow
from harness.results import (
    BEST_CARD_FILE,
    BEST_FILE,
    BEST_MODEL_FILE,
    ENSEMBLE_FILE,
    ENSEMBLE_MODEL_FILE,
    TABLE_FILE,
    make_folder,
    read_ensemble,
    read_json_file,
    read_meta,
    read_table_file,
    resolve_run_dir,
)
from harness.study import load_study

FORMATS = ("csv", "json", "parquet")
CARD_FORMAT = "harness-model-card/1"


def add_parser(subparsers, add_common) -> None:
    """``harness export STUDY --format F [--output PATH]`` / ``--best-model PATH [--retrain]``."""
    parser = subparsers.add_parser(
        "export",
        help="export the trial table (csv, json, parquet) or the best model with its card",
        description=(
            "Write the trial table with --format (default file: ./<study>-trials.<format>), "
            "and/or copy the best model to --best-model PATH.keras with its JSON model card "
            "(PATH.json). --retrain trains the best trial's parameters on training + "
            "validation data and exports that model instead."
        ),
    )
    parser.add_argument("target", help="study name (under --runs-dir) or run directory")
    parser.add_argument("--format", choices=FORMATS, help="trial table format")
    parser.add_argument(
        "--output", type=Path, help="where to write the table (default ./<study>-trials.<format>)"
    )
    parser.add_argument(
        "--best-model", type=Path, metavar="PATH",
        help="write the best trial's model here (.keras) and its card next to it (.json)",
    )
    parser.add_argument(
        "--retrain", action="store_true",
        help="with --best-model: retrain the best parameters on training + validation data",
    )
    parser.add_argument(
        "--ensemble", action="store_true",
        help="with --best-model: export the study's ensemble (harness ensemble) instead of "
        "the best single model",
    )
    add_common(parser)
    parser.set_defaults(handler=cmd_export)


@harness.hookimpl
def harness_register_commands(subparsers, add_common) -> None:
    """Add ``harness export``."""
    add_parser(subparsers, add_common)


def cmd_export(args) -> int:
    if args.format is None and args.best_model is None:
        raise HarnessError("give --format csv|json|parquet, --best-model PATH.keras, or both")
    if args.output is not None and args.format is None:
        raise HarnessError("--output is where the table goes: give --format too")
    if args.retrain and args.best_model is None:
        raise HarnessError("--retrain applies to --best-model PATH.keras; give that too")
    if args.ensemble and args.best_model is None:
        raise HarnessError("--ensemble applies to --best-model PATH.keras; give that too")
    if args.ensemble and args.retrain:
        raise HarnessError(
            "--ensemble exports the ensemble of the kept models as they were trained; "
            "--retrain retrains one trial: give one of them"
        )
    run_dir = resolve_run_dir(args.target, args.runs_dir)
    if args.best_model is not None:
        start_tensorflow()
    if args.format is not None:
        name = read_meta(run_dir).get("name") or run_dir.name
        output = args.output or Path(f"{name}-trials.{args.format}")
        with _naming_the_file(output, "--output"):
            path = export_table(run_dir, args.format, output)
        print(f"trials: {path}")
    if args.best_model is not None:
        with _naming_the_file(args.best_model, "--best-model"):
            if args.ensemble:
                model_path, card_path = export_ensemble(run_dir, args.best_model)
            else:
                model_path, card_path = export_best_model(
                    run_dir, args.best_model, retrain=args.retrain,
                    extra_plugins=tuple(args.plugin),
                )
        print(f"model: {model_path}")
        print(f"card:  {card_path}")
    return 0


@contextlib.contextmanager
def _naming_the_file(path: Path, flag: str):
    """A write that fails (a full disk, no permission) is one line naming the flag's file."""
    try:
        yield
    except OSError as exc:
        raise HarnessError(f"{flag} {path}: cannot write it: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- table


def read_trials(run_dir: Path):
    """``trials.csv`` as written (best first)."""
    return read_table_file(run_dir / TABLE_FILE)


def export_table(run_dir: Path, fmt: str, output: Path) -> Path:
    """Write the trial table of ``run_dir`` to ``output`` as ``fmt``; return the path."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "parquet" and not _has_parquet_engine():
        raise HarnessError(
            "parquet export needs pyarrow: pip install pyarrow (or use --format csv or json)"
        )
    table = read_trials(run_dir)
    output = Path(output)
    if output.is_dir():
        output = output / f"{run_dir.name}-trials.{fmt}"
    make_folder(output.parent, "--output")
    with replacing(output) as tmp:
        if fmt == "csv":
            table.to_csv(tmp, index=False)
        elif fmt == "json":
            records = [
                {key: _json_value(value) for key, value in row.items()}
                for row in table.to_dict(orient="records")
            ]
            tmp.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
        else:
            table.to_parquet(tmp, index=False)
    return output


def _has_parquet_engine() -> bool:
    return any(importlib.util.find_spec(name) for name in ("pyarrow", "fastparquet"))


def _json_value(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------- best model


def model_destination(path: Path, study: str) -> Path:
    """``path`` itself when it ends in .keras; ``path/<study>-best.keras`` for a folder."""
    path = Path(path)
    if path.is_dir():
        return path / f"{study}-best.keras"
    if path.suffix != ".keras":
        raise HarnessError(
            f"--best-model {path}: give a file name ending in .keras "
            "(Keras 3 saves and loads .keras files) or an existing folder"
        )
    return path


def export_best_model(
    run_dir: Path,
    destination: Path,
    *,
    retrain: bool = False,
    extra_plugins: tuple[str, ...] = (),
    plugins: Any = None,
) -> tuple[Path, Path]:
    """Copy (or retrain and save) the best trial's model; write its card. Returns both paths."""
    meta = read_meta(run_dir)
    study_name = meta.get("name") or run_dir.name
    target = model_destination(destination, study_name)
    best_file = run_dir / BEST_FILE
    best = read_json_file(best_file, "best trial") if best_file.is_file() else None
    card_file = run_dir / BEST_CARD_FILE
    saved_card = read_json_file(card_file, "model card") if card_file.is_file() else {}
    make_folder(target.parent, "--best-model")
    if retrain:
        if best is None:
            raise HarnessError(
                f"{best_file} does not exist: no trial completed, nothing to retrain"
            )
        card = _retrain(run_dir, meta, best, saved_card, target, extra_plugins, plugins)
    else:
        source = run_dir / BEST_MODEL_FILE
        if not source.is_file():
            why = (
                "multi-objective studies keep no single best model"
                if len(meta.get("objectives", [])) > 1
                else "no trial completed yet"
            )
            fix = (
                "use --retrain to train the best trial's parameters"
                if best is not None
                else "run the study until a trial completes"
            )
            raise HarnessError(f"{source} does not exist ({why}); {fix}")
        with replacing(target) as tmp:
            shutil.copyfile(source, tmp)
        if best is not None and saved_card and saved_card.get("trial") != best.get("trial"):
            print(
                f"note: best.keras is trial {saved_card.get('trial')}'s model; best.json names "
                f"trial {best.get('trial')} (saved by a concurrent worker?)",
                file=sys.stderr,
            )
        card = _card(meta, saved_card, best, source=str(source.resolve()), retrained=None)
    card_path = target.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    return target, card_path


def export_ensemble(run_dir: Path, destination: Path) -> tuple[Path, Path]:
    """Copy the study's ensemble (``ensemble.keras``) and write its card; both paths."""
    meta = read_meta(run_dir)
    source = run_dir / ENSEMBLE_MODEL_FILE
    record = read_ensemble(run_dir)
    if record is None:
        raise HarnessError(
            f"{source} does not exist: this study has no ensemble yet; build it with "
            f"harness ensemble {run_dir}"
        )
    saved = read_json_file(run_dir / ENSEMBLE_FILE, "ensemble card")
    target = model_destination(destination, meta.get("name") or run_dir.name)
    make_folder(target.parent, "--best-model")
    with replacing(target) as tmp:
        shutil.copyfile(source, tmp)
    card = _card(meta, saved, None, source=str(source.resolve()), retrained=None)
    card["ensemble"] = record
    if saved.get("test"):
        card["test"] = saved["test"]
    card_path = target.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    return target, card_path


def _card(
    meta: dict[str, Any],
    saved: dict[str, Any],
    best: dict[str, Any] | None,
    *,
    source: str,
    retrained: dict[str, Any] | None,
    params: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The exported model's card: what it was trained on and how to feed it."""
    dataset = dataset if dataset is not None else saved.get("dataset") or {}
    trial = saved.get("trial") if saved else None
    if trial is None and best is not None:
        trial = best.get("trial")
    params = params if params is not None else saved.get("params") or (best or {}).get("params")
    searched = list(meta.get("searched", {}))
    card = {
        "format": CARD_FORMAT,
        "study": meta.get("name") or saved.get("study"),
        "trial": trial,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "retrained": retrained,
        "objectives": meta.get("objectives", []),
        "metrics": saved.get("metrics") or (best or {}).get("values", {}),
        "params": params or {},
        "searched_params": {k: v for k, v in (params or {}).items() if k in searched},
        "dataset": dataset.get("name"),
        "task": dataset.get("task"),
        "input_shape": dataset.get("input_shape"),
        "num_classes": dataset.get("num_classes"),
        "class_names": dataset.get("class_names"),
        "vocabulary": dataset.get("vocabulary"),
        "preprocessing": dataset.get("preprocessing") or {},
        "versions": _versions(),
        "usage": _usage(dataset),
    }
    if not dataset:
        card["note"] = "best_model.json was missing: dataset details are unknown"
    return card


def _usage(dataset: dict[str, Any]) -> str:
    task = dataset.get("task")
    outputs = {
        "binary": "one sigmoid probability of class_names[1]",
        "multiclass": "one softmax probability per class, in class_names order",
        "next_token": "one softmax probability per vocabulary entry",
        "regression": "one number",
    }.get(task or "", "see the model's output layer")
    shape = dataset.get("input_shape")
    return (
        "keras.models.load_model(path); inputs: batches of shape "
        f"(N, {', '.join(map(str, shape or []))}) prepared as 'preprocessing' says; "
        f"outputs: {outputs}"
    )


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in ("keras", "tensorflow", "harness"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def _retrain(run_dir, meta, best, saved_card, target, extra_plugins, plugins) -> dict[str, Any]:
    """Train the best trial's parameters on train + validation; save to ``target``."""
    study_file = meta.get("study_file")
    if not study_file or not Path(study_file).is_file():
        raise HarnessError(
            f"--retrain needs the study file {study_file!r} recorded in {run_dir}/study.json; "
            "it is gone (restore it, or export without --retrain)"
        )
    plugins = plugins if plugins is not None else load_plugins(list(extra_plugins))
    spec = load_study(study_file, plugins, meta.get("overrides") or {}, meta.get("profile"))
    number = int(best["trial"])
    params = dict(meta.get("literals") or {})
    if saved_card.get("trial") == number and saved_card.get("params"):
        params.update(saved_card["params"])
    params.update(best.get("params") or {})
    metrics = _trial_metrics(run_dir, number)
    pipeline = TrialPipeline(TrialContext(StudyContext(spec, run_dir), number, params, "export"))
    try:
        built = pipeline.prepare()
        model, dataset = built.model, pipeline.dataset
        epochs = pipeline.train.epochs
        ran = metrics.get("epochs_run")
        if built.fine_tune is None and ran and 0 < int(ran) < epochs:
            epochs = int(ran)  # a stopping callback ended the trial early
        history = pipeline.fit(pipeline.fit_inputs(merge_validation=True), [], epochs)
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - one readable line for the CLI
        raise HarnessError(
            f"retraining trial {number} failed: {type(exc).__name__}: {exc}"
        ) from exc
    with replacing(target) as tmp:
        model.save(tmp)
    final = {k: v[-1] for k, v in history.items() if v}
    retrained = {
        "data": "train+validation" if dataset.validation is not None else "train",
        "epochs": len(next(iter(history.values()), [])),
        "seed": pipeline.seed + number,
        "final_training_metrics": final,
        "note": "trained without validation data: 'metrics' are the trial's validation "
        "metrics from the search",
    }
    saved = dict(saved_card) if saved_card.get("trial") == number else {}
    saved.setdefault("metrics", metrics)
    return _card(
        meta, saved, best, source=str(meta.get("study_file")), retrained=retrained,
        params=params, dataset=dataset.info.to_json(),
    )


def _trial_metrics(run_dir: Path, number: int) -> dict[str, float]:
    """The trial's metric columns from ``trials.csv`` (non-missing numbers only)."""
    table = read_trials(run_dir)
    rows = table[table["number"] == number]
    if rows.empty:
        return {}
    row = rows.iloc[0]
    skip = {"number", "duration_s"}
    out = {}
    for key, value in row.items():
        value = value.item() if hasattr(value, "item") else value
        if "." in str(key) or key in skip or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        out[str(key)] = float(value)
    return out
