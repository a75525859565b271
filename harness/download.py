"""Dataset downloads for users with a network: Keras's cache, a checksum, and a timeout.

``keras.utils.get_file`` hangs forever behind a silent network and raises a
bare ``Exception`` offline; :func:`fetch` bounds it with a socket timeout and
turns every failure into one :class:`DownloadUnavailable` message that says
which files to put where instead.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from harness.errors import HarnessError

DEFAULT_TIMEOUT_S = float(os.environ.get("HARNESS_DOWNLOAD_TIMEOUT", "30"))


class DownloadUnavailable(HarnessError):
    """The dataset is neither on disk nor downloadable; the message says what to do."""


def keras_home() -> Path:
    """Keras's own folder: ``$KERAS_HOME``, default ``~/.keras``."""
    return Path(os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras"))


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded datasets (``$KERAS_HOME/datasets``)."""
    return keras_home() / "datasets"


def keras_models_dir() -> Path:
    """Where Keras keeps downloaded weights and class indices (``$KERAS_HOME/models``)."""
    return keras_home() / "models"


def offline() -> bool:
    """Whether ``HARNESS_OFFLINE`` forbids trying the network (1, true or yes)."""
    return os.environ.get("HARNESS_OFFLINE", "") in ("1", "true", "yes")


def fetch(
    fname: str,
    url: str,
    *,
    file_hash: str | None = None,
    extract: bool = False,
    offline_help: str,
    timeout: float | None = None,
) -> Path:
    """Return the local path of ``fname``, downloading it into the Keras cache if needed.

    ``offline_help`` finishes the error message when the download fails, e.g.
    "put train-images-idx3-ubyte.gz (and the 3 other IDX files) in a folder and
    set [dataset] path to it". Set ``HARNESS_OFFLINE=1`` to never try the network.
    """
    cached = keras_cache_dir() / fname
    if cached.exists() and not extract:
        return cached
    if offline():
        raise DownloadUnavailable(
            f"{fname} is not in the Keras cache ({cached}) and HARNESS_OFFLINE is set; "
            + offline_help
        )
    import keras  # lazy: imports TensorFlow

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout or DEFAULT_TIMEOUT_S)
    try:
        path = keras.utils.get_file(fname, origin=url, file_hash=file_hash, extract=extract)
    except Exception as exc:  # noqa: BLE001 - get_file raises bare Exception offline
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DownloadUnavailable(
            f"could not download {fname} from {url} ({reason[:200]}); " + offline_help
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return Path(path)
