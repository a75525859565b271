"""Named components contributed by plugins through the ``harness_register_*`` hooks."""

from __future__ import annotations

import difflib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from harness.data import TASKS
from harness.errors import HarnessError, PluginError

FAMILIES = ("datasets", "models", "augmentations", "callbacks")

#: Entry-point group through which a third-party package adds a search backend.
BACKEND_ENTRY_POINT_GROUP = "harness.backends"
#: The built-in search backends: name -> module (see harness.backends.base).
BUILT_IN_BACKENDS = {
    "optuna": "harness.backends.optuna",
    "kerastuner": "harness.backends.kerastuner",
}


def backend_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed third-party backends by name (read from the metadata, nothing imported)."""
    group = importlib.metadata.entry_points(group=BACKEND_ENTRY_POINT_GROUP)
    return {entry.name: entry for entry in group}


def backend_names() -> list[str]:
    """Every backend a study may name: the built-ins and the installed entry points. Each
    backend's own settings are the study file's table named after it (``[optuna]``)."""
    return sorted(set(BUILT_IN_BACKENDS) | set(backend_entry_points()))


class NoParams(BaseModel):
    """Parameters of a component that takes none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Component:
    """One registered dataset, model builder, augmentation or callback."""

    family: str
    name: str
    function: Callable[..., Any]
    params: type[BaseModel]
    description: str
    plugin: str
    source: str
    #: Datasets: the tasks the loader can produce (None: not declared), so that a study's
    #: objective is checked against them before any trial runs.
    tasks: tuple[str, ...] | None = None
    #: Datasets: ``check(params)`` finds missing or malformed data without loading it
    #: (raises HarnessError); run by ``harness validate`` and before a run writes anything.
    check: Callable[[Any], None] | None = None
    #: Datasets: ``decoder(path, image_size, color_mode)`` -> uint8 array or None; model
    #: cards name it (``preprocessing.decoder = "<dataset name>"``) so ``predict`` prepares
    #: new images as in training.
    decoder: Callable[..., Any] | None = None
    #: Datasets: ``splits(params, seed)`` -> :class:`harness.data.SplitLabels`, the labels
    #: (and groups) of each split as a trial with that seed loads them, without TensorFlow;
    #: ``harness validate`` prints the examples per class of each split from it.
    splits: Callable[[Any, int], Any] | None = None


class Register(Protocol):
    """The callable handed to ``harness_register_*`` hooks."""

    def __call__(
        self,
        name: str,
        function: Callable[..., Any],
        *,
        params: type[BaseModel] | None = None,
        description: str = "",
        tasks: tuple[str, ...] | None = None,
        check: Callable[[Any], None] | None = None,
        decoder: Callable[..., Any] | None = None,
        splits: Callable[[Any, int], Any] | None = None,
    ) -> None: ...


@dataclass
class Registry:
    """All components of one family, by name; a second registration of a name is an error."""

    family: str
    components: dict[str, Component] = field(default_factory=dict)

    def register_from(self, plugin: str, source: str) -> Register:
        """Return the ``register`` callable given to one plugin's hook."""

        def register(
            name, function, *, params=None, description="", tasks=None, check=None,
            decoder=None, splits=None,
        ):
            if not isinstance(name, str) or not name.isidentifier():
                raise PluginError(
                    f"plugin {plugin!r} ({source}) registered {self.family[:-1]} {name!r}: "
                    "names must be identifiers such as 'my_dataset'"
                )
            if not callable(function):
                raise PluginError(
                    f"plugin {plugin!r} ({source}) registered {self.family[:-1]} {name!r} "
                    "with a non-callable"
                )
            if params is not None and not (
                isinstance(params, type) and issubclass(params, BaseModel)
            ):
                raise PluginError(
                    f"plugin {plugin!r} ({source}): params of {name!r} must be a pydantic model"
                )
            existing = self.components.get(name)
            if existing is not None:
                raise PluginError(
                    f"{self.family[:-1]} {name!r} is registered twice: by plugin "
                    f"{existing.plugin!r} ({existing.source}) and by plugin {plugin!r} ({source}). "
                    f"Uninstall or block one of them (HARNESS_DISABLE_PLUGINS={plugin})."
                )
            for label, hook in (("check", check), ("decoder", decoder), ("splits", splits)):
                if hook is not None and not callable(hook):
                    raise PluginError(
                        f"plugin {plugin!r} ({source}): {label} of {name!r} must be callable"
                    )
            if tasks is not None:
                unknown = [t for t in tasks if t not in TASKS]
                if isinstance(tasks, str) or unknown:
                    raise PluginError(
                        f"plugin {plugin!r} ({source}): tasks of {name!r} must be a tuple of "
                        f"{', '.join(TASKS)}"
                    )
                tasks = tuple(tasks)
            doc = description or (function.__doc__ or "").strip().split("\n")[0]
            self.components[name] = Component(
                self.family,
                name,
                function,
                params or NoParams,
                doc,
                plugin,
                source,
                tasks=tasks,
                check=check,
                decoder=decoder,
                splits=splits,
            )

        return register

    def get(self, name: str, where: str = "") -> Component:
        """Return the component called ``name`` or fail listing the available ones."""
        try:
            return self.components[name]
        except KeyError:
            raise HarnessError(unknown_name_message(self.family[:-1], name, self.names(), where))

    def names(self) -> list[str]:
        """Sorted names of every registered component."""
        return sorted(self.components)


def unknown_name_message(kind: str, name: str, available: list[str], where: str = "") -> str:
    """One line saying ``name`` is unknown, the closest match, and what exists."""
    prefix = f"{where}: " if where else ""
    close = difflib.get_close_matches(name, available, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(available) if available else "(none)"
    return f"{prefix}unknown {kind} {name!r}.{hint} Available: {listing}."
