"""Benchmark: harness's image pipeline vs the course's ImageDataGenerator, loader only and
end to end.

``--mode loader`` (the default) measures the input pipeline alone, **loader only**
(no model): it reads the training images of a cats-vs-dogs tree (``train/cats``,
``train/dogs``) at 150x150 for 3 epochs, both ways, in one run:

* harness: ``image_folder`` (decoded once into uint8 .npy files, held as uint8 in memory
  and scaled per batch), batched, shuffled and prefetched exactly
  as the trial runner does (``harness.fit_inputs.training_pipelines``, batch 32). "cold" is the
  first trial of a study (includes decoding into the cache); "warm" is every
  later trial or worker process (loads the decoded arrays from the cache).
* course: ``tf_keras``' ``ImageDataGenerator(rescale=1/255).flow_from_directory``,
  which decodes and resizes every JPEG again in every epoch.

``--mode end-to-end`` trains the course's cats-vs-dogs CNN (``studies/cats_vs_dogs_cnn.toml``'s
enqueued trial #0: Conv 32-64-128-128 + MaxPool, Dense(512), Dropout(0.5), RMSprop at 1e-4,
batch 20, no augmentation) for ``--e2e-epochs`` epoch(s) with validation, from the image
folder to weights, both ways. Both sides build and compile the model with harness's own
builder (``harness.pipeline.build_model``, so the same layers and the same compile options,
32 batches per call); only the input differs:

* harness, cold: the ``cats_vs_dogs`` dataset plugin decodes every image into an empty cache,
  then ``training_pipelines`` feeds ``fit`` (a study's first trial);
* harness, warm: the same with the decoded cache already on disk (every later trial);
* course: ``ImageDataGenerator(rescale=1/255).flow_from_directory`` on ``train/`` and
  ``validation/``, read by ``fit`` as a ``keras.utils.PyDataset`` with its defaults.

Each timed pass counts from the first file read to the last weight update and validation
batch (dataset or generator, model build and compile, fit). The three run ``--e2e-repeat``
times, interleaved (the course first in every other round); printed: each pass, the median
and range of seconds, and the median and range of the per-round ratios course / harness.

Run: ``.venv/bin/python bench/image_pipeline.py [--mode loader|end-to-end|both]``
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


def course_study(data: Path, image_size: int, epochs: int):
    """The course's cats-vs-dogs CNN as ``studies/cats_vs_dogs_cnn.toml``'s trial #0 trains it,
    without augmentation (the course's ``rescale=1/255`` generator adds none)."""
    from harness.plugins import load_plugins
    from harness.study import parse_study

    raw = {
        "study": {"name": "e2e", "objective": "val_accuracy", "seed": 0},
        "dataset": {"name": "cats_vs_dogs", "path": str(data), "image_size": image_size},
        "model": {"name": "cnn", "conv_layers": 4, "filters": 32, "filters_growth": "double",
                  "filters_4": 128, "units": 512, "dropout": 0.5},
        "train": {"optimizer": "rmsprop", "learning_rate": 1e-4, "epochs": epochs,
                  "batch_size": 20},
    }
    return parse_study(raw, load_plugins(), REPO / "e2e.toml")


def harness_e2e(spec, cache: Path) -> tuple[float, float, float]:
    """Images on disk to trained weights through harness: load (decoding into ``cache`` if
    it is empty), build, fit with validation. Seconds in all, seconds in ``fit`` and the
    last val_accuracy."""
    import keras

    from harness.data import LoadContext
    from harness.fit_inputs import component_params, train_params, training_pipelines
    from harness.pipeline import build_model

    params = dict(spec.space.literals)
    started = time.perf_counter()
    dataset = spec.dataset.component.function(
        component_params(spec.dataset, params), LoadContext(cache_dir=cache, seed=0)
    )
    train = train_params(params)
    keras.utils.set_random_seed(0)
    built = build_model(spec, params, dataset.info, train)
    train_ds, val_ds = training_pipelines(dataset, train, None, seed=0)
    fitting = time.perf_counter()
    history = built.model.fit(train_ds, validation_data=val_ds, epochs=train.epochs, verbose=0)
    done = time.perf_counter()
    keras.backend.clear_session()
    return done - started, done - fitting, float(history.history["val_accuracy"][-1])


def course_e2e(spec, data: Path, info) -> tuple[float, float, float]:
    """Images on disk to trained weights the course's way: two ``flow_from_directory``
    generators (train, validation) read by ``fit``; the same model and compile."""
    import keras
    from tf_keras.preprocessing.image import ImageDataGenerator

    from harness.fit_inputs import train_params
    from harness.pipeline import build_model

    class Batches(keras.utils.PyDataset):
        """A Keras 2 ``DirectoryIterator`` as Keras 3's ``fit`` reads a Sequence."""

        def __init__(self, iterator):
            super().__init__()
            self.iterator = iterator

        def __len__(self):
            return len(self.iterator)

        def __getitem__(self, index):
            return self.iterator[index]

        def on_epoch_end(self):
            self.iterator.on_epoch_end()

    params = dict(spec.space.literals)
    train = train_params(params)
    size = tuple(info.input_shape[:2])
    started = time.perf_counter()
    generator = ImageDataGenerator(rescale=1 / 255)
    flows = [
        Batches(generator.flow_from_directory(
            str(data / split), target_size=size, batch_size=train.batch_size,
            class_mode="binary", shuffle=split == "train", seed=0,
        ))
        for split in ("train", "validation")
    ]
    keras.utils.set_random_seed(0)
    built = build_model(spec, params, info, train)
    fitting = time.perf_counter()
    history = built.model.fit(flows[0], validation_data=flows[1], epochs=train.epochs, verbose=0)
    done = time.perf_counter()
    keras.backend.clear_session()
    return done - started, done - fitting, float(history.history["val_accuracy"][-1])


def _spread(values: list[float], unit: str = "", digits: int = 1) -> str:
    import statistics

    return (f"{statistics.median(values):.{digits}f}{unit} "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})")


def end_to_end(args) -> None:
    """Train the course's CNN from the image folder, harness cold / warm and the course's
    generator, interleaved; print seconds and ratios (median and range)."""
    import contextlib
    import io

    spec = course_study(args.data, args.image_size, args.e2e_epochs)
    print(f"end to end: the course's cats-vs-dogs CNN, {args.image_size}x{args.image_size}, "
          f"batch 20, {args.e2e_epochs} epoch(s) with validation, images to weights; "
          f"{args.e2e_repeat} interleaved rounds", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        # untimed warm-up: TensorFlow's first graphs and the dataset info for the course side
        harness_e2e(spec, Path(cache))
        from harness.data import LoadContext
        from harness.fit_inputs import component_params

        info = spec.dataset.component.function(
            component_params(spec.dataset, dict(spec.space.literals)),
            LoadContext(cache_dir=Path(cache), seed=0),
        ).info
    times: dict[str, list[float]] = {"cold": [], "warm": [], "course": []}
    fits: dict[str, list[float]] = {key: [] for key in times}
    accuracy: dict[str, list[float]] = {key: [] for key in times}
    for round_ in range(args.e2e_repeat):
        with tempfile.TemporaryDirectory() as cache:
            order = ["cold", "warm", "course"] if round_ % 2 == 0 else ["course", "cold", "warm"]
            for key in order:
                if key == "course":
                    with contextlib.redirect_stdout(io.StringIO()):  # "Found 600 images ..."
                        seconds, fit, val = course_e2e(spec, args.data, info)
                else:
                    seconds, fit, val = harness_e2e(spec, Path(cache))
                times[key].append(seconds)
                fits[key].append(fit)
                accuracy[key].append(val)
        print(f"round {round_ + 1}: " + ", ".join(
            f"{key} {times[key][-1]:.1f} s (fit {fits[key][-1]:.1f} s, val "
            f"{accuracy[key][-1]:.3f})" for key in order
        ), flush=True)
    labels = {
        "cold": "harness, cold (decodes into the cache first)",
        "warm": "harness, warm (decoded cache on disk)",
        "course": "course ImageDataGenerator.flow_from_directory",
    }
    print("seconds, images to weights: median (range); of which in fit")
    for key, label in labels.items():
        print(f"{label:48s} {_spread(times[key], ' s')}; fit {_spread(fits[key], ' s')}")
    for key in ("warm", "cold"):
        ratios = [c / h for c, h in zip(times["course"], times[key], strict=True)]
        print(f"end to end, course / harness {key}: {_spread(ratios, 'x', 2)} "
              f"(median (range) of {len(ratios)} rounds)")


def main(argv: list[str] | None = None) -> int:
    """Run both pipelines and print images/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with train/<class>/ images (default: shared cats-vs-dogs)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each")
    parser.add_argument("--mode", choices=("loader", "end-to-end", "both"), default="loader",
                        help="loader only (default), end to end (train the course's CNN), both")
    parser.add_argument("--e2e-epochs", type=int, default=1, help="epochs of the end-to-end fit")
    parser.add_argument("--e2e-repeat", type=int, default=3,
                        help="interleaved rounds of the end-to-end fit")
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
    if args.mode != "loader":
        end_to_end(args)
        if args.mode == "end-to-end":
            return 0
    print(f"loader only (no model): data: {args.data}, {args.image_size}x{args.image_size}, "
          f"batch {args.batch_size}, {args.epochs} epochs, best and median of {args.repeat} "
          f"interleaved runs, {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}")
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
    warm = [w.rate / c.rate for w, c in zip(runs["warm"], runs["course"], strict=True)]
    cold = [w.rate / c.rate for w, c in zip(runs["cold"], runs["course"], strict=True)]
    print(
        f"loader only, ratio warm / course over {epochs} epochs: median of rates "
        f"{median['warm'] / median['course']:.1f}x, best {best['warm'] / best['course']:.1f}x, "
        f"per round {_spread(warm, 'x')}; epochs 2+: {steady['warm'] / steady['course']:.1f}x"
    )
    print(
        f"loader only, ratio cold (a study's first trial) / course over {epochs} epochs: "
        f"median of rates {median['cold'] / median['course']:.1f}x, per round {_spread(cold, 'x')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
