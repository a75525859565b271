"""Benchmark: a frozen transfer base's features computed once vs the base run every epoch.

Runs the same ``transfer`` trials through the harness's trial runner three ways,
in one process, on ../shared/data/cats-vs-dogs (JPEGs decoded with Pillow at a
small size; no network: the base has random weights):

* every epoch   ``HARNESS_FEATURE_CACHE=0``: the full model trains on images, so
                the frozen base runs over every image in every epoch;
* cached, none  ``weights = "none"``: a random base differs per trial, so each
                trial computes its features once and trains the head on them;
* cached, file  ``weights = <a saved .weights.h5>``: the same base in every trial,
                so the features are computed by the first trial only and later
                trials read them (memory, or disk under the run's cache/).

Prints seconds per trial (whole trial: build, features, fit, evaluate) and the
ratio of the means against "every epoch". Usage::

    .venv/bin/python bench/transfer_features.py [--backbone resnet50] [--size 64]
        [--epochs 5] [--trials 3] [--per-class 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

import harness

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cats-vs-dogs"
_ARRAYS: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}


class CatsDogsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = 96
    per_class: int = 300


def _read(folder: Path, size: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    images, labels = [], []
    for label, name in enumerate(("cats", "dogs")):
        for path in sorted((folder / name).glob("*.jpg"))[:per_class]:
            with Image.open(path) as img:
                resized = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
                images.append(np.asarray(resized, dtype="float32") / 255.0)
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype="int32")


def load_cats_dogs(params: CatsDogsParams, context):
    """cats-vs-dogs train/validation folders as [0, 1] arrays (decoded once per process)."""
    from harness.data import DatasetInfo, from_arrays

    key = (params.size, params.per_class)
    if key not in _ARRAYS:
        _ARRAYS[key] = (*_read(DATA / "train", *key), *_read(DATA / "validation", *key))
    info = DatasetInfo(
        name="bench_cats_dogs", input_shape=(params.size, params.size, 3), task="binary",
        num_classes=2, class_names=("cats", "dogs"),
    )
    return from_arrays(info, *_ARRAYS[key])


@harness.hookimpl
def harness_register_datasets(register):
    """Register the benchmark's dataset."""
    register("bench_cats_dogs", load_cats_dogs, params=CatsDogsParams)


def run_trials(plugins, run_dir: Path, args, weights: str) -> list[tuple[float, float]]:
    """(seconds, val_accuracy) of ``args.trials`` trials of one study."""
    import harness.features
    from harness.context import StudyContext, TrialContext
    from harness.study import parse_study
    from harness.trial import release_trial_memory, run_trial

    harness.features._MEMORY.clear()
    raw = {
        "study": {"name": "bench", "objective": "val_accuracy", "seed": 0},
        "dataset": {"name": "bench_cats_dogs", "size": args.size, "per_class": args.per_class},
        "model": {"name": "transfer", "backbone": args.backbone, "weights": weights,
                  "pooling": "avg", "units": 64, "dropout": 0.2},
        "train": {"epochs": args.epochs, "batch_size": 32, "learning_rate": 1e-3},
    }
    spec = parse_study(raw, plugins, run_dir / "bench.toml")
    study = StudyContext(spec, run_dir)
    rows = []
    for number in range(args.trials):
        result = run_trial(TrialContext(study, number, dict(spec.space.literals)), plugins)
        if result.state != "complete":
            sys.exit(f"trial {number} {result.state}: {result.fail_reason}")
        rows.append((result.duration_s, result.metrics.get("val_accuracy", float("nan"))))
        print(f"  trial {number}: {result.duration_s:7.2f} s", flush=True)
        release_trial_memory()
    return rows


def main() -> None:
    """Run the three variants and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # resnet50: its random-weight features still separate classes a little (mobilenet_v2's
    # and efficientnet_b0's are ~0 without pretrained weights), so accuracies can be compared
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=300, help="images per class and split")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is missing")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["HARNESS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    os.environ["HARNESS_DISABLE_PLUGINS"] = "tensorboard"
    import keras
    from harness_plugins.models.transfer import BACKBONES

    from harness.plugins import load_plugins

    plugins = load_plugins([__file__])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights_file = root / f"{args.backbone}_notop.weights.h5"
        getattr(keras.applications, BACKBONES[args.backbone][0])(
            include_top=False, weights=None, input_shape=(args.size, args.size, 3)
        ).save_weights(weights_file)
        results = {}
        for label, weights, cache in (
            ("every epoch", "none", "0"),
            ("cached, none", "none", "1"),
            ("cached, file", str(weights_file), "1"),
        ):
            os.environ["HARNESS_FEATURE_CACHE"] = cache
            print(f"{label}:", flush=True)
            results[label] = run_trials(plugins, root / label.replace(", ", "-"), args, weights)

    train, val = 2 * min(args.per_class, 300), 2 * min(args.per_class, 150)
    print(
        f"\ntransfer {args.backbone} {args.size}x{args.size}, frozen base, cats-vs-dogs "
        f"{train} train / {val} validation images, {args.epochs} epochs, batch 32, CPU"
    )
    labels = list(results)
    print("trial  " + "  ".join(f"{label:>13}" for label in labels))
    for number in range(args.trials):
        print(f"{number:>5}  " + "  ".join(f"{results[k][number][0]:>11.2f} s" for k in labels))
    means = {k: statistics.mean(s for s, _ in rows) for k, rows in results.items()}
    print(" mean  " + "  ".join(f"{means[k]:>11.2f} s" for k in labels))
    accuracy = {k: statistics.mean(a for _, a in rows) for k, rows in results.items()}
    print("v.acc  " + "  ".join(f"{accuracy[k]:>13.3f}" for k in labels))
    base = means["every epoch"]
    for label in labels[1:]:
        print(f"{label}: {base / means[label]:.1f}x faster per trial than every epoch")


if __name__ == "__main__":
    main()
