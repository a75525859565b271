"""Benchmark: a frozen transfer base's features computed once vs the base run every epoch.

Runs the same ``transfer`` trials through the harness's trial runner four ways,
in one process, on ../shared/data/cats-vs-dogs (JPEGs decoded with Pillow at a
small size). No network here, so no ImageNet weights: every base has random
weights (the "file" arms save one random base to a ``.weights.h5`` and load it,
which is how a downloaded weights file is used):

* every epoch   ``HARNESS_FEATURE_CACHE=0``: the full model trains on images, so
                the frozen base runs over every image in every epoch;
* cached, none  ``weights = "none"``: a random base differs per trial, so each
                trial computes its features once and trains the head on them;
* once per run  the course's own method: ``weights = <the file>``, features
                computed once per script run and the head trained on them; a
                search runs the script once per set of values, so every trial
                computes the same base's features again (harness's trial
                runner, with its feature memory emptied and a fresh cache
                folder for each trial);
* shared, file  ``weights = <the file>``: the same base in every trial, so the
                features are computed by the first trial only and later
                trials read them (memory, or disk under the runs folder's .cache/).

The arms take turns trial by trial (trial 0 of each, then trial 1 of each, the
order rotating). Prints seconds per trial (whole trial: build, features, fit,
evaluate), the mean, median and range per arm, and the ratios of the means: each
arm against "every epoch", and "shared, file" against "once per run". Usage::

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


class Arm:
    """One way of running the study's trials: its study, cache settings and feature memory."""

    def __init__(self, label: str, plugins, run_dir: Path, args, weights: str, cache: str,
                 fresh_cache_per_trial: bool = False):
        from harness.context import StudyContext
        from harness.study import parse_study

        raw = {
            "study": {"name": "bench", "objective": "val_accuracy", "seed": 0},
            "dataset": {"name": "bench_cats_dogs", "size": args.size,
                        "per_class": args.per_class},
            "model": {"name": "transfer", "backbone": args.backbone, "weights": weights,
                      "pooling": "avg", "units": 64, "dropout": 0.2},
            "train": {"epochs": args.epochs, "batch_size": 32, "learning_rate": 1e-3},
        }
        run_dir.mkdir(parents=True)
        self.label, self.plugins, self.run_dir, self.cache = label, plugins, run_dir, cache
        self.fresh = fresh_cache_per_trial
        self.spec = parse_study(raw, plugins, run_dir / "bench.toml")
        self.study = StudyContext(self.spec, run_dir)
        self.memory: dict = {}  # this arm's share of harness.features._MEMORY
        self.rows: list[tuple[float, float]] = []

    def trial(self, number: int) -> None:
        """Run trial ``number`` with this arm's settings; keep (seconds, val_accuracy)."""
        import harness.features
        from harness.context import TrialContext
        from harness.trial import release_trial_memory, run_trial

        os.environ["HARNESS_FEATURE_CACHE"] = self.cache
        folder = self.run_dir / (f"features-{number}" if self.fresh else "features")
        os.environ["HARNESS_FEATURE_CACHE_DIR"] = str(folder)
        memory = harness.features._MEMORY
        memory.clear()
        if not self.fresh:
            memory.update(self.memory)
        result = run_trial(TrialContext(self.study, number, dict(self.spec.space.literals)),
                           self.plugins)
        self.memory = dict(memory)
        memory.clear()
        if result.state != "complete":
            sys.exit(f"{self.label}, trial {number} {result.state}: {result.fail_reason}")
        self.rows.append((result.duration_s, result.metrics.get("val_accuracy", float("nan"))))
        print(f"  {self.label}, trial {number}: {result.duration_s:7.2f} s", flush=True)
        release_trial_memory()


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
        arms = [
            Arm("every epoch", plugins, root / "every", args, "none", "0"),
            Arm("cached, none", plugins, root / "none", args, "none", "1"),
            Arm("once per run", plugins, root / "once", args, str(weights_file), "1",
                fresh_cache_per_trial=True),
            Arm("shared, file", plugins, root / "shared", args, str(weights_file), "1"),
        ]
        # untimed: decode the JPEGs once (every arm's trials then read the same arrays)
        load_cats_dogs(CatsDogsParams(size=args.size, per_class=args.per_class), None)
        for number in range(args.trials):
            shift = number % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                arm.trial(number)

    train, val = 2 * min(args.per_class, 300), 2 * min(args.per_class, 150)
    print(
        f"\ntransfer {args.backbone} {args.size}x{args.size}, frozen base with random weights "
        f"(no ImageNet weights here), cats-vs-dogs {train} train / {val} validation images, "
        f"{args.epochs} epochs, batch 32, CPU; {args.trials} trials per arm, interleaved; "
        "whole-trial seconds"
    )
    labels = [arm.label for arm in arms]
    results = {arm.label: arm.rows for arm in arms}
    print("trial  " + "  ".join(f"{label:>13}" for label in labels))
    for number in range(args.trials):
        print(f"{number:>5}  " + "  ".join(f"{results[k][number][0]:>11.2f} s" for k in labels))
    means = {k: statistics.mean(s for s, _ in rows) for k, rows in results.items()}
    print(" mean  " + "  ".join(f"{means[k]:>11.2f} s" for k in labels))
    medians = {k: statistics.median(s for s, _ in rows) for k, rows in results.items()}
    print("median " + "  ".join(f"{medians[k]:>11.2f} s" for k in labels))
    print("range  " + "  ".join(
        f"{min(s for s, _ in results[k]):>5.1f}-{max(s for s, _ in results[k]):<5.1f}s"
        for k in labels
    ))
    accuracy = {k: statistics.mean(a for _, a in rows) for k, rows in results.items()}
    print("v.acc  " + "  ".join(f"{accuracy[k]:>13.3f}" for k in labels))
    base = means["every epoch"]
    for label in labels[1:]:
        print(f"{label}: {base / means[label]:.1f}x faster per trial (mean) than every epoch")
    course = means["once per run"]
    later = [s for s, _ in results["shared, file"][1:]]
    print(
        f"shared, file: {course / means['shared, file']:.1f}x faster per trial (mean of "
        f"{args.trials}) than once per run, the course's method"
        + (f"; {course / statistics.mean(later):.1f}x for trials after the first"
           if later else "")
    )


if __name__ == "__main__":
    main()
