"""The plugin manager: built-ins, the ``harness`` entry-point group and ``--plugin``; and
the plugins that add commands, loaded before the command line is parsed.

Environment variables control autoloading of third-party plugins (built-ins
always load unless blocked by name):

* ``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry-point plugin.
* ``HARNESS_PLUGINS=a,b``: load only these entry-point plugins.
* ``HARNESS_DISABLE_PLUGINS=a,b``: block these plugins (entry-point or built-in names).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import PluginError, describe_exception
from harness.registry import FAMILIES, Registry

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "harness"

#: Built-in plugins, by short name. They use the public ``hookimpl`` like any third party.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("digits", "harness_plugins.datasets.digits"),
    ("image_folder", "harness_plugins.datasets.image_folder"),
    ("course_images", "harness_plugins.datasets.course_images"),
    ("headlines", "harness_plugins.datasets.headlines"),
    ("mnist", "harness_plugins.datasets.mnist"),
    ("sign_language_mnist", "harness_plugins.datasets.sign_language_mnist"),
    ("linear", "harness_plugins.datasets.linear"),
    ("csv_table", "harness_plugins.datasets.csv_table"),
    ("dense", "harness_plugins.models.dense"),
    ("cnn", "harness_plugins.models.cnn"),
    ("linear_model", "harness_plugins.models.linear"),
    ("transfer", "harness_plugins.models.transfer"),
    ("lstm_text", "harness_plugins.models.lstm_text"),
    ("image_augmentations", "harness_plugins.augmentations.image"),
    ("stopping", "harness_plugins.callbacks.stopping"),
    ("tensorboard", "harness_plugins.trackers.tensorboard"),
)


@dataclass(frozen=True)
class LoadedPlugin:
    """A plugin that was registered, and where it came from."""

    name: str
    source: str


@dataclass
class CommandPlugins:
    """The plugins that can add commands (:func:`load_command_plugins`), in load order;
    ``third_party`` names the entry-point ones."""

    pm: pluggy.PluginManager
    loaded: list[LoadedPlugin] = field(default_factory=list)
    third_party: set[str] = field(default_factory=set)

    def register_commands(
        self, subparsers: Any, add_common: Callable[[argparse.ArgumentParser], None]
    ) -> None:
        """Call ``harness_register_commands`` one plugin at a time, in load order (the order
        of ``harness --help``). A name two plugins add is an error naming both; a
        third-party hook that raises adds no command and is one warning."""
        owners: dict[str, LoadedPlugin] = {}
        for plugin in self.loaded:
            module = self.pm.get_plugin(plugin.name)
            others = [other for other in self.pm.get_plugins() if other is not module]
            call = self.pm.subset_hook_caller("harness_register_commands", others)
            commands = _PluginCommands(subparsers, owners, plugin)
            try:
                call(subparsers=commands, add_common=add_common)
            except PluginError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
                commands.remove()
                message = (
                    f"plugin {plugin.name!r} ({plugin.source}) raised while adding commands: "
                    f"{type(exc).__name__}: {exc}"
                )
                if plugin.name not in self.third_party:
                    raise PluginError(message)
                log.warning("%s", message)


class _PluginCommands:
    """The ``subparsers`` one plugin's ``harness_register_commands`` gets: argparse's action,
    except that a command name (or alias) another plugin added is refused in one line
    naming both (argparse's own error names neither)."""

    def __init__(self, subparsers: Any, owners: dict[str, LoadedPlugin], plugin: LoadedPlugin):
        self._subparsers = subparsers
        self._owners = owners
        self._plugin = plugin
        self._added: list[str] = []

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        names = [name, *kwargs.get("aliases", ())]
        for command in names:
            owner = self._owners.get(command)
            if owner is not None:
                raise PluginError(
                    f"command {command!r} is added twice: by plugin {owner.name!r} "
                    f"({owner.source}) and by plugin {self._plugin.name!r} "
                    f"({self._plugin.source}). Uninstall or block one of them "
                    f"(HARNESS_DISABLE_PLUGINS={self._plugin.name})."
                )
        parser = self._subparsers.add_parser(name, **kwargs)
        for command in names:
            self._owners[command] = self._plugin
            self._added.append(command)
        return parser

    def remove(self) -> None:
        """Take back the commands this plugin added (its hook raised half-way)."""
        for command in self._added:
            self._subparsers.choices.pop(command, None)
            self._owners.pop(command, None)
        self._subparsers._choices_actions[:] = [
            action for action in self._subparsers._choices_actions
            if action.dest not in self._added
        ]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._subparsers, name)


@dataclass
class HarnessPlugins:
    """Registered plugins and the typed facade the core calls; every call goes through
    ``pm.hook``, so hook wrappers and ``firstresult`` work for third parties."""

    pm: pluggy.PluginManager
    registries: dict[str, Registry] = field(default_factory=dict)
    loaded: list[LoadedPlugin] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    @property
    def datasets(self) -> Registry:
        return self.registries["datasets"]

    @property
    def models(self) -> Registry:
        return self.registries["models"]

    @property
    def augmentations(self) -> Registry:
        return self.registries["augmentations"]

    @property
    def callbacks(self) -> Registry:
        return self.registries["callbacks"]

    def study_start(self, study: Any) -> None:
        """Fire ``harness_study_start``."""
        self.pm.hook.harness_study_start(study=study)

    def study_end(self, study: Any, table: Any) -> None:
        """Fire ``harness_study_end``."""
        self.pm.hook.harness_study_end(study=study, table=table)

    def trial_start(self, trial: Any) -> None:
        """Fire ``harness_trial_start``."""
        self.pm.hook.harness_trial_start(trial=trial)

    def trial_callbacks(self, trial: Any) -> list[Any]:
        """Collect the Keras callbacks every plugin adds to a trial's fit."""
        callbacks: list[Any] = []
        for contributed in self.pm.hook.harness_trial_callbacks(trial=trial):
            callbacks.extend(contributed or [])
        return callbacks

    def test_evaluated(self, study: Any, trial_number: int, metrics: dict[str, float]) -> None:
        """Fire ``harness_test_evaluated``; a tracker's failure never changes the results."""
        with _logged_failure("harness_test_evaluated"):
            self.pm.hook.harness_test_evaluated(
                study=study, trial_number=trial_number, metrics=metrics
            )

    def ensemble_built(self, study: Any, ensemble: dict[str, Any]) -> None:
        """Fire ``harness_ensemble_built``; a tracker's failure never changes the ensemble."""
        with _logged_failure("harness_ensemble_built"):
            self.pm.hook.harness_ensemble_built(study=study, ensemble=ensemble)

    def trial_end(self, trial: Any, result: Any) -> None:
        """Fire ``harness_trial_end``; a tracker's failure never changes the trial's outcome."""
        with _logged_failure("harness_trial_end"):
            self.pm.hook.harness_trial_end(trial=trial, result=result)


#: Hooks whose implementations are isolated from each other: one that raises is logged and
#: skipped, the others still run (each implementation is wrapped when its plugin registers).
ISOLATED_HOOKS = ("harness_trial_end", "harness_test_evaluated", "harness_ensemble_built")


@contextlib.contextmanager
def _logged_failure(hook: str) -> Iterator[None]:
    """Log, never raise, what escapes a hook call (a third party's hook wrapper, say)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - isolation of third-party trackers
        log.warning("a hook wrapper failed in %s: %s", hook, describe_exception(exc), exc_info=True)


def _isolate(impl: pluggy.HookImpl, hook: str) -> None:
    """Make one implementation of an isolated hook log and return None when it raises."""
    function = impl.function

    @functools.wraps(function)
    def isolated(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - isolation of third-party trackers
            # The traceback goes to harness.log; the terminal shows this one line.
            log.warning(
                "plugin %r failed in %s: %s", impl.plugin_name, hook, describe_exception(exc),
                exc_info=True,
            )
            return None

    impl.function = isolated


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _import_extra(spec: str) -> ModuleType:
    """Import a ``--plugin`` given as a dotted module path or a ``.py`` file."""
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise PluginError(f"--plugin {spec}: no such file")
        module_name = f"harness_extra_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        assert module_spec and module_spec.loader
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise PluginError(f"--plugin {spec} failed to import: {type(exc).__name__}: {exc}")
        return module
    try:
        return importlib.import_module(spec)
    except Exception as exc:
        raise PluginError(
            f"--plugin {spec} failed to import: {type(exc).__name__}: {exc}. "
            "Give an importable module path (mypkg.plugin) or a .py file."
        )


def _entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _blocked() -> set[str]:
    return _env_list("HARNESS_DISABLE_PLUGINS") or set()


def _selected_entry_points(
    blocked: set[str],
) -> Iterator[tuple[importlib.metadata.EntryPoint, str, str]]:
    """The entry points the environment lets load: (entry point, its distribution, source)."""
    if os.environ.get("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "") in ("1", "true", "yes"):
        return
    only = _env_list("HARNESS_PLUGINS")
    for ep in _entry_points():
        if ep.name in blocked or (only is not None and ep.name not in only):
            continue
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
        yield ep, dist, f"entry point {ep.name} = {ep.value} (distribution {dist})"


def load_command_plugins(builtins: Iterable[tuple[str, str]]) -> CommandPlugins:
    """The plugins that can add commands, before the command line is parsed: the built-in
    command modules ``builtins`` (short name, module path) and the entry-point plugins,
    subject to the environment variables above. ``--plugin`` comes too late for this.

    An entry-point plugin that fails to import or to register is left out here without a
    word: :func:`load_plugins` reports it when a command loads the plugins.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins = CommandPlugins(pm)
    blocked = _blocked()
    for name, module_path in builtins:
        if name not in blocked:
            pm.register(importlib.import_module(module_path), name=name)
            plugins.loaded.append(LoadedPlugin(name, f"built-in ({module_path})"))
    for ep, _, source in _selected_entry_points(blocked):
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # noqa: BLE001 - load_plugins reports it, once
            log.debug("plugin %r adds no command: %s", ep.name, describe_exception(exc))
            continue
        plugins.loaded.append(LoadedPlugin(ep.name, source))
        plugins.third_party.add(ep.name)
    return plugins


def load_plugins(extra: Iterable[str] = ()) -> HarnessPlugins:
    """Build the plugin manager: built-ins, entry points (subject to the env vars), extras.

    A third-party plugin that fails to import or whose register hook raises is
    reported (in ``broken`` and the log) with its distribution's name; the
    other plugins still load. Two plugins registering the same name is an error.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins = HarnessPlugins(pm, {family: Registry(family) for family in FAMILIES})
    blocked = _blocked()

    for name, module_path in BUILTIN_PLUGINS:
        if name in blocked:
            continue
        module = importlib.import_module(module_path)
        _register(plugins, module, name, f"built-in ({module_path})", third_party=False)

    for ep, dist, source in _selected_entry_points(blocked):
        try:
            module = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
            message = (
                f"plugin {ep.name!r} from distribution {dist} failed to import: "
                f"{type(exc).__name__}: {exc}"
            )
            plugins.broken.append(message)
            log.warning("%s", message)
            continue
        _register(plugins, module, ep.name, source, third_party=True)

    for spec in extra:
        module = _import_extra(spec)
        if not any(
            getattr(getattr(module, name, None), f"{hookspecs.PROJECT}_impl", None)
            for name in dir(module)
            if name.startswith("harness_")
        ):
            raise PluginError(
                f"--plugin {spec}: defines no harness hook (functions named harness_* and "
                "marked @harness.hookimpl); check the module name"
            )
        _register(plugins, module, module.__name__, f"--plugin {spec}", third_party=False)
    return plugins


def _register(
    plugins: HarnessPlugins, module: Any, name: str, source: str, *, third_party: bool
) -> None:
    """Register one plugin and run its ``harness_register_*`` hooks with attribution."""
    if plugins.pm.is_registered(module):
        return
    if plugins.pm.get_plugin(name) is not None:
        other = next((p.source for p in plugins.loaded if p.name == name), "another plugin")
        raise PluginError(
            f"two plugins are named {name!r}: {other} and {source}; "
            f"rename one or block it (HARNESS_DISABLE_PLUGINS={name})"
        )
    try:
        plugins.pm.register(module, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"plugin {name!r} ({source}) is invalid: {exc}")
    for hook in ISOLATED_HOOKS:
        for impl in getattr(plugins.pm.hook, hook).get_hookimpls():
            if impl.plugin is module and not (impl.hookwrapper or impl.wrapper):
                _isolate(impl, hook)
    staged = {family: Registry(family) for family in FAMILIES}
    # Only this plugin's register hooks run now, so that what it registers is attributed to it.
    others = [plugin for plugin in plugins.pm.get_plugins() if plugin is not module]
    try:
        for family in FAMILIES:
            call = plugins.pm.subset_hook_caller(f"harness_register_{family}", others)
            call(register=staged[family].register_from(name, source))
    except PluginError:
        raise
    except Exception as exc:  # noqa: BLE001
        plugins.pm.unregister(module)
        message = (
            f"plugin {name!r} ({source}) raised while registering: {type(exc).__name__}: {exc}"
        )
        if not third_party:
            raise PluginError(message)
        plugins.broken.append(message)
        log.warning("%s", message)
        return
    for family, registry in staged.items():
        target = plugins.registries[family]
        for component in registry.components.values():
            target.register_from(component.plugin, component.source)(
                component.name,
                component.function,
                params=component.params,
                description=component.description,
                tasks=component.tasks,
                check=component.check,
                decoder=component.decoder,
                splits=component.splits,
            )
    plugins.loaded.append(LoadedPlugin(name, source))
