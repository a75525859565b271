"""``harness predict``: use a saved model on new images, numbers or prompts.

``harness predict MODEL IMAGE...`` classifies images with a ``.keras`` model.
Each image is decoded and preprocessed as in training (size, colour mode,
rescale) from the model card: ``best_model.json`` next to a study's
``best.keras``, or ``MODEL.json`` / ``MODEL.keras.json`` next to any other
model (``--card`` names one). It prints the ``--top`` class names with their
probabilities (a binary model's sigmoid gives both classes).

``harness predict MODEL --prompt "washington dc is" --words 5`` generates a
headline with a next-word model: the vocabulary travels inside the model, so
no card is needed. ``harness predict MODEL 10`` runs a model on numbers
(comma-separated values for several inputs; standardized like the training
data when the card says how).

``harness predict --pretrained vgg16 IMAGE...`` classifies with an ImageNet
model, prints the decoded class names and the course's doggy-door verdict.

Models load in Keras safe mode (no ``Lambda`` code) unless ``--unsafe``.
"""

from __future__ import annotations

import json
import math
import socket
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

import harness
from harness._images import read_image
from harness.card import find_decoder, parse_card
from harness.download import DEFAULT_TIMEOUT_S, keras_models_dir, offline
from harness.errors import HarnessError
from harness.layers import register
from harness.plugins import load_plugins
from harness.program import program
from harness.quiet import start_tensorflow
from harness.results import BEST_CARD_FILE, BEST_MODEL_FILE
from harness.textgen import generate, vocabulary_layer

#: --pretrained name -> (keras.applications constructor, module, input side, weights file)
PRETRAINED: dict[str, tuple[str, str, int, str]] = {
    "vgg16": ("VGG16", "vgg16", 224, "vgg16_weights_tf_dim_ordering_tf_kernels.h5"),
    "resnet50": ("ResNet50", "resnet50", 224, "resnet50_weights_tf_dim_ordering_tf_kernels.h5"),
    "inception_v3": (
        "InceptionV3", "inception_v3", 299, "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
    ),
    "mobilenet_v2": (
        "MobileNetV2", "mobilenet_v2", 224,
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
    ),
    "efficientnet_b0": ("EfficientNetB0", "efficientnet", 224, "efficientnetb0.h5"),
}
#: ImageNet class ids of dogs and of cats (the course's doggy door).
DOG_CLASSES = range(151, 269)
CAT_CLASSES = range(281, 286)
MODEL_SUFFIXES = (".keras", ".h5")
#: Files a user may pass a next-word model by mistake (an image, a table, a model).
FILE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".csv", ".npz", ".keras", ".h5")
CLASS_INDEX_FILE = "imagenet_class_index.json"


def add_parser(subparsers, add_common) -> None:
    """``harness predict MODEL INPUT...`` / ``harness predict --pretrained NAME IMAGE...``."""
    parser = subparsers.add_parser(
        "predict",
        help="classify images, generate text or predict numbers with a saved model",
        description=(
            "MODEL is a .keras file. Image models take image files (preprocessed as in "
            "training, from the model card), next-word models take --prompt, numeric models "
            "take numbers (1,2,3 for several inputs). --pretrained NAME classifies images "
            "with ImageNet weights instead (no MODEL)."
        ),
    )
    parser.add_argument(
        "paths", nargs="*", metavar="MODEL INPUT",
        help="the model file, then images, numbers or prompts",
    )
    parser.add_argument(
        "--pretrained", choices=sorted(PRETRAINED),
        help="classify IMAGE... with this ImageNet model (and the doggy-door verdict)",
    )
    parser.add_argument(
        "--weights", type=Path,
        help="local weights file for --pretrained (the full model's, with its classifier)",
    )
    parser.add_argument(
        "--card", type=Path,
        help="model card JSON (default: best_model.json next to best.keras, else MODEL.json)",
    )
    parser.add_argument("--top", type=int, default=3, help="classes to print per image")
    parser.add_argument(
        "--prompt", action="append", default=[], help="seed text for a next-word model"
    )
    parser.add_argument("--words", type=int, default=5, help="words to generate (default 5)")
    parser.add_argument(
        "--unsafe", action="store_true",
        help="allow models with Lambda layers (runs code stored in the file: trusted files only)",
    )
    add_common(parser)
    parser.set_defaults(handler=run)


@harness.hookimpl
def harness_register_commands(subparsers, add_common) -> None:
    """Add ``harness predict``."""
    add_parser(subparsers, add_common)


def run(args) -> int:
    """The ``predict`` command."""
    if args.top < 1:
        raise HarnessError(f"--top must be at least 1, got {args.top}")
    start_tensorflow()
    if args.pretrained:
        return predict_pretrained(args.pretrained, [Path(p) for p in args.paths], args)
    if not args.paths:
        raise HarnessError(
            f"give a model file: {program()} predict MODEL INPUT... "
            f"(or {program()} predict --pretrained vgg16 IMAGE...)"
        )

    plugins = load_plugins(args.plugin)  # Keras layers their models use, image decoders
    model_path, inputs = Path(args.paths[0]), args.paths[1:]
    model = load_model(model_path, unsafe=args.unsafe)
    if vocabulary_layer(model) is not None:
        prompts = [*args.prompt, *inputs]
        if not prompts:
            raise HarnessError('a next-word model needs a prompt: --prompt "washington dc is"')
        for prompt in prompts:
            if Path(prompt).suffix.lower() in FILE_SUFFIXES and Path(prompt).is_file():
                raise HarnessError(
                    f"{prompt}: is a file, but {model_path} is a next-word model that writes "
                    'text from a prompt: --prompt "washington dc is"'
                )
            print(generate(model, prompt, args.words))
        return 0
    if args.prompt:
        raise HarnessError(f"{model_path} is not a next-word model; --prompt does not apply")
    if not inputs:
        raise HarnessError(f"give the inputs to predict after the model: {model_path} INPUT...")
    card = read_card(model_path, args.card)
    shape = tuple(model.input_shape)
    if len(shape) == 4:
        batch = np.stack([load_image(Path(p), card, shape, plugins) for p in inputs])
    elif len(shape) == 2:
        batch = standardize(np.stack([parse_numbers(text, shape[1]) for text in inputs]), card)
    else:
        raise HarnessError(
            f"predict handles image, numeric and next-word models; this one takes {shape}"
        )
    outputs = np.asarray(model.predict(batch, verbose=0))
    for name, output in zip(inputs, outputs, strict=True):
        print(name)
        for line in describe(output, card, model, args.top):
            print(f"  {line}")
    return 0


def load_model(path: Path, unsafe: bool = False):
    """Load a ``.keras`` model (safe mode unless ``unsafe``) with the harness's layers known."""
    if not path.is_file():
        raise HarnessError(f"{path}: no such model file")
    if path.suffix not in MODEL_SUFFIXES:
        raise HarnessError(f"{path}: not a Keras model file; give a .keras file (e.g. best.keras)")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise HarnessError(
            f"not a Keras model file: {path} (a .keras file is a zip archive; this one is "
            "truncated, corrupt or something else renamed); save or copy the model again"
        )
    import keras  # lazy: imports TensorFlow

    register()
    try:
        return keras.models.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # noqa: BLE001 - any loading problem is the file's
        text = str(exc).strip()
        if "safe_mode" in text or "Lambda" in text:
            raise HarnessError(
                f"{path} holds code (a Lambda layer) that Keras does not run in safe mode; "
                "add --unsafe only if you trust this file"
            ) from None
        first = text.splitlines()[0][:300] if text else ""
        raise HarnessError(
            f"not a Keras model file: {path} ({type(exc).__name__}: {first}); is it a Keras 3 "
            "model saved by harness (or --plugin the module defining its custom layers)?"
        ) from None


def read_card(model_path: Path, explicit: Path | None = None) -> dict[str, Any]:
    """The dataset part of a model card (task, class names, preprocessing), or {} if none."""
    if explicit is not None:
        if not explicit.is_file():
            raise HarnessError(f"--card {explicit}: no such file")
        candidates = [explicit]
    else:
        candidates = [
            model_path.with_name(model_path.name + ".json"),
            model_path.with_suffix(".json"),
        ]
        if model_path.name == BEST_MODEL_FILE:
            candidates.insert(0, model_path.with_name(BEST_CARD_FILE))
    for path in candidates:
        if not path.is_file():
            continue
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            if explicit is not None:
                raise HarnessError(f"--card {path}: not a JSON model card ({exc})") from None
            continue
        if not isinstance(card, dict):
            if explicit is not None:
                raise HarnessError(f"--card {path}: a model card is a JSON object")
            continue
        if isinstance(card.get("dataset"), dict):  # best_model.json
            return parse_card(card["dataset"], f"{path}: dataset")
        if "task" in card or "preprocessing" in card:  # harness export's card
            return parse_card(card, str(path))
        if explicit is not None:
            raise HarnessError(f"--card {path}: has no dataset section (task, preprocessing)")
    return {}


def check_image_path(path: Path) -> None:
    """An image argument must be a file: a folder or a device says so, with the fix."""
    if path.is_dir():
        raise HarnessError(
            f"{path}: is a folder; give the image files in it (e.g. {path}/*.jpg)"
        )
    if path.exists() and not path.is_file():
        raise HarnessError(f"{path}: not a regular file; give image files (JPEG, PNG, ...)")
    if not path.is_file():
        raise HarnessError(f"{path}: no such image file")


def load_image(
    path: Path, card: dict[str, Any], input_shape: tuple, plugins: Any = None
) -> np.ndarray:
    """Decode, resize and rescale one image as the model's training data was (the card
    has been validated by :func:`harness.card.parse_card`; its decoder is a plugin's)."""
    check_image_path(path)
    pre = card.get("preprocessing") or {}
    size = tuple(int(v) for v in (pre.get("image_size") or input_shape[1:3]))
    channels = input_shape[-1]
    color_mode = pre.get("color_mode") or ("grayscale" if channels == 1 else "rgb")
    decoder = find_decoder(pre.get("decoder"), plugins, "model card") if plugins else None
    if decoder is not None:
        array = decoder(path, size, color_mode)
    else:
        array = read_image(
            path, size, color_mode, interpolation=str(pre.get("interpolation", "bilinear"))
        )
    if array is None:
        raise HarnessError(f"{path}: cannot read it as an image (corrupt or not an image file)")
    if array.shape[-1] != channels or tuple(array.shape[:2]) != tuple(input_shape[1:3]):
        raise HarnessError(
            f"{path}: decoded to {array.shape} but the model takes {tuple(input_shape[1:])}; "
            "check the model card's image_size and color_mode"
        )
    return scaled_like_training(array, pre)


def scaled_like_training(array: np.ndarray, pre: dict[str, Any]) -> np.ndarray:
    """An image file's 8-bit pixels (0..255) mapped onto the training images' own
    ``pixel_range`` (digits: 0..16), then scaled as they were (``rescale`` or ``scale``,
    then ``offset``)."""
    low, high = (float(v) for v in pre.get("pixel_range", (0.0, 255.0)))
    pixels = low + array.astype("float32") * ((high - low) / 255.0)
    rescale = pre.get("rescale", pre.get("scale", 1 / 255))
    return (pixels * float(rescale) + float(pre.get("offset", 0.0))).astype("float32")


def parse_numbers(text: str, width: int | None) -> np.ndarray:
    """``"1.5"`` or ``"1,2,3"`` -> a float32 row of ``width`` values."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise HarnessError(f"{text!r}: give numbers, comma-separated for several inputs") from None
    if not all(math.isfinite(v) for v in values):
        raise HarnessError(f"{text!r}: give finite numbers (not nan or inf)")
    if width is not None and len(values) != width:
        raise HarnessError(f"{text!r}: the model takes {width} numbers, got {len(values)}")
    return np.asarray(values, dtype="float32")


def standardize(batch: np.ndarray, card: dict[str, Any]) -> np.ndarray:
    """Apply the training data's standardization (``csv_table``: mean and std per column)."""
    stats = (card.get("preprocessing") or {}).get("standardize")
    if not isinstance(stats, dict) or "mean" not in stats or "std" not in stats:
        return batch
    mean = np.asarray(stats["mean"], dtype="float32")
    std = np.asarray(stats["std"], dtype="float32")
    return ((batch - mean) / np.where(std > 0, std, 1.0)).astype("float32")


def _task(card: dict[str, Any], model) -> str:
    if card.get("task"):
        return str(card["task"])
    activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", "")
    if activation == "sigmoid" and model.output_shape[-1] == 1:
        return "binary"
    return "multiclass" if activation == "softmax" else "regression"


def describe(output: np.ndarray, card: dict[str, Any], model, top: int) -> list[str]:
    """Lines for one prediction: top classes with probabilities, or the predicted value(s)."""
    task = _task(card, model)
    output = np.asarray(output, dtype="float64").reshape(-1)
    if task == "regression":
        return [", ".join(f"{value:.4f}" for value in output)]
    if task == "binary":
        probabilities = np.array([1.0 - output[0], output[0]])
    else:
        probabilities = output
    names = list(card.get("class_names") or [])
    if len(names) != len(probabilities):
        names = [f"class {i}" for i in range(len(probabilities))]
    order = np.argsort(-probabilities)[:top]
    width = max(len(names[i]) for i in order)
    return [f"{names[i]:<{width}}  {probabilities[i]:.4f}" for i in order]


def doggy_door(class_id: int) -> str:
    """The course's verdict for an ImageNet class id: dogs come in, cats stay inside."""
    if class_id in DOG_CLASSES:
        return "dog: door opens"
    if class_id in CAT_CLASSES:
        return "cat: door stays closed"
    return "neither dog nor cat: door stays closed"


def _pretrained_model(name: str, weights: Path | None):
    import keras  # lazy: imports TensorFlow

    constructor_name, _, _, filename = PRETRAINED[name]
    constructor = getattr(keras.applications, constructor_name)
    help_text = (
        f"download {filename} where a network is available and pass --weights /path/to/"
        f"{filename} (or put it in {keras_models_dir()})"
    )
    if weights is not None:
        if not weights.is_file():
            raise HarnessError(f"--weights {weights}: no such file")
        try:
            return constructor(weights=str(weights))
        except Exception as exc:  # noqa: BLE001 - a mismatching file is the user's
            raise HarnessError(
                f"--weights {weights} does not fit {name} with its classifier "
                f"({type(exc).__name__}: {str(exc).strip()[:200]}); expected {filename}"
            ) from None
    if offline() and not (keras_models_dir() / filename).is_file():
        raise HarnessError(
            f"the ImageNet weights of {name} are not in {keras_models_dir()} and "
            f"HARNESS_OFFLINE is set; {help_text}"
        )
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DEFAULT_TIMEOUT_S)
    try:
        return constructor(weights="imagenet")
    except Exception as exc:  # noqa: BLE001 - Keras raises bare Exception offline
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise HarnessError(
            f"could not get the ImageNet weights of {name} ({reason}); {help_text}"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def _imagenet_names(module, predictions: np.ndarray, top: int) -> list[list[tuple[str, float]]]:
    """Decoded (name, probability) pairs; class ids when the class index is unavailable."""

    def class_ids() -> list[list[tuple[str, float]]]:
        print(
            f"note: {CLASS_INDEX_FILE} is not available (no network?); printing class ids",
            file=sys.stderr,
        )
        rows = []
        for row in predictions:
            order = np.argsort(-row)[:top]
            rows.append([(f"class {i}", float(row[i])) for i in order])
        return rows

    if offline() and not (keras_models_dir() / CLASS_INDEX_FILE).is_file():
        return class_ids()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DEFAULT_TIMEOUT_S)
    try:
        decoded = module.decode_predictions(predictions, top=top)
        return [[(label, float(p)) for _, label, p in row] for row in decoded]
    except Exception:  # noqa: BLE001 - the class index could not be downloaded
        return class_ids()
    finally:
        socket.setdefaulttimeout(previous)


def predict_pretrained(name: str, images: list[Path], args) -> int:
    """Classify ``images`` with an ImageNet model: top classes and the doggy-door verdict."""
    if not images:
        raise HarnessError(f"give image files: {program()} predict --pretrained {name} IMAGE...")
    for path in images:
        check_image_path(path)
    _, module_name, side, _ = PRETRAINED[name]
    import keras  # lazy: imports TensorFlow

    module = getattr(keras.applications, module_name)
    model = _pretrained_model(name, args.weights)
    arrays = []
    for path in images:
        array = read_image(path, (side, side), "rgb", interpolation="nearest")
        if array is None:
            raise HarnessError(f"{path}: cannot read it as an image (corrupt or not an image file)")
        arrays.append(array.astype("float32"))
    predictions = np.asarray(model.predict(module.preprocess_input(np.stack(arrays)), verbose=0))
    for path, row, names in zip(
        images, predictions, _imagenet_names(module, predictions, args.top), strict=True
    ):
        print(path)
        width = max(len(label) for label, _ in names)
        for label, probability in names:
            print(f"  {label:<{width}}  {probability:.4f}")
        print(f"  doggy door: {doggy_door(int(np.argmax(row)))}")
    return 0
