"""Benchmark: images/s of image_folder's cached pipeline vs the course's ImageDataGenerator.

Reads the training images of a cats-vs-dogs tree (``train/cats``, ``train/dogs``)
at 150x150 for 3 epochs, both ways, in one run:

* harness: ``image_folder`` (decoded once into uint8 .npy files, held as uint8 in memory
  and scaled per batch), batched, shuffled and prefetched exactly
  as the trial runner does (``harness.fit_inputs.training_pipelines``, batch 32). "cold" is the
  first trial of a study (includes decoding into the cache); "warm" is every
  later trial or worker process (loads the decoded arrays from the cache).
* course: ``tf_keras``' ``ImageDataGenerator(rescale=1/255).flow_from_directory``,
  which decodes and resizes every JPEG again in every epoch.

Run: ``.venv/bin/python bench/image_pipeline.py [--data DIR] [--epochs 3]``
(needs ``pip install 'tf_keras~=2.21.0'`` for the baseline). Each pipeline runs
``--repeat`` times, interleaved, in one process; the best and the median are printed,
since a shared machine's other load makes single runs noisy.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cats-vs-dogs"


@dataclass
class Pass:
    """One pipeline's run: set-up seconds, seconds per epoch, images per epoch."""

    setup_s: float
    epoch_s: list[float]
    images: int

    @property
    def rate(self) -> float:
        """Images/s over all epochs, set-up (loading, decoding, scanning) included."""
        return self.images * len(self.epoch_s) / (self.setup_s + sum(self.epoch_s))

    @property
    def steady_rate(self) -> float:
        """Images/s of the epochs after the first (what a long training run sees)."""
        later = self.epoch_s[1:] or self.epoch_s
        return self.images * len(later) / sum(later)


def harness_pass(data: Path, cache: Path, size: int, batch: int, epochs: int) -> Pass:
    """Load through the cache in ``cache`` and read ``epochs`` epochs as the trial runner does."""
    from harness_plugins.datasets.image_folder import ImageFolderParams, load_image_folder

    from harness.data import LoadContext
    from harness.fit_inputs import training_pipelines
    from harness.study import TrainParams

    started = time.perf_counter()
    dataset = load_image_folder(
        ImageFolderParams(path=str(data), image_size=size), LoadContext(cache_dir=cache, seed=0)
    )
    train_ds, _ = training_pipelines(dataset, TrainParams(batch_size=batch), None, seed=0)
    setup = time.perf_counter() - started
    times, seen = [], 0
    for _ in range(epochs):
        started = time.perf_counter()
        for x, _y in train_ds:
            seen += int(x.shape[0])
        times.append(time.perf_counter() - started)
    return Pass(setup, times, seen // epochs)


def course_pass(data: Path, size: int, batch: int, epochs: int) -> Pass:
    """ImageDataGenerator.flow_from_directory yielding ``epochs`` epochs, as ``fit`` reads it."""
    from tf_keras.preprocessing.image import ImageDataGenerator

    started = time.perf_counter()
    generator = ImageDataGenerator(rescale=1 / 255).flow_from_directory(
        str(data / "train"), target_size=(size, size), batch_size=batch, class_mode="binary"
    )
    setup = time.perf_counter() - started
    times, seen = [], 0
    for _ in range(epochs):
        started = time.perf_counter()
        for _step in range(len(generator)):
            x, _y = next(generator)
            seen += len(x)
        times.append(time.perf_counter() - started)
    return Pass(setup, times, seen // epochs)


def main(argv: list[str] | None = None) -> int:
    """Run both pipelines and print images/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with train/<class>/ images (default: shared cats-vs-dogs)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each")
    args = parser.parse_args(argv)
    if not (args.data / "train").is_dir():
        print(f"no {args.data}/train folder: pass --data pointing at a cats-vs-dogs tree")
        return 2
    try:
        import tf_keras  # noqa: F401
    except ImportError:
        print("the baseline needs tf_keras (Keras 2's ImageDataGenerator): "
              "run .venv/bin/pip install 'tf_keras~=2.21.0' and retry")
        return 2
    import statistics

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    print(f"data: {args.data}, {args.image_size}x{args.image_size}, batch {args.batch_size}, "
          f"{args.epochs} epochs, best and median of {args.repeat} interleaved runs, "
          f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}")
    runs: dict[str, list[Pass]] = {"warm": [], "cold": [], "course": []}
    size, batch, epochs = args.image_size, args.batch_size, args.epochs
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            runs["cold"].append(harness_pass(args.data, Path(cache), size, batch, epochs))
            runs["warm"].append(harness_pass(args.data, Path(cache), size, batch, epochs))
        runs["course"].append(course_pass(args.data, size, batch, epochs))
    labels = {
        "warm": "harness image_folder, warm (decoded cache)",
        "cold": "harness image_folder, cold (decodes first)",
        "course": "course ImageDataGenerator.flow_from_directory",
    }
    best = {key: max(p.rate for p in passes) for key, passes in runs.items()}
    median = {key: statistics.median(p.rate for p in passes) for key, passes in runs.items()}
    steady = {key: statistics.median(p.steady_rate for p in passes) for key, passes in runs.items()}
    print(f"images/s; {epochs} epochs incl. set-up (best, median), and epochs 2+ alone (median)")
    print(f"{'pipeline':48s} {'best':>7s} {'median':>7s} {'epochs 2+':>9s}")
    for key, label in labels.items():
        print(f"{label:48s} {best[key]:7.0f} {median[key]:7.0f} {steady[key]:9.0f}")
    print(
        f"ratio warm / course over {epochs} epochs: best {best['warm'] / best['course']:.1f}x, "
        f"median {median['warm'] / median['course']:.1f}x; epochs 2+: "
        f"{steady['warm'] / steady['course']:.1f}x; cold / course: "
        f"{median['cold'] / median['course']:.1f}x (target: warm >= 10x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
