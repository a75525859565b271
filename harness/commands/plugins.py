"""``harness plugins``: every registered plugin, by family, with where it comes from."""

from __future__ import annotations

import harness
from harness.plugins import load_plugins
from harness.registry import FAMILIES

#: The lifecycle hooks ``harness plugins`` lists implementations of, in the order they fire.
LIFECYCLE_HOOKS = (
    "harness_study_start",
    "harness_trial_start",
    "harness_trial_callbacks",
    "harness_trial_end",
    "harness_test_evaluated",
    "harness_ensemble_built",
    "harness_study_end",
)


def add_parser(subparsers, add_common) -> None:
    """``harness plugins``."""
    plugins = subparsers.add_parser("plugins", help="list registered plugins by family")
    add_common(plugins)
    plugins.set_defaults(handler=cmd_plugins)


@harness.hookimpl
def harness_register_commands(subparsers, add_common) -> None:
    """Add ``harness plugins``."""
    add_parser(subparsers, add_common)


def cmd_plugins(args) -> int:
    """Each family's components with their plugin's source, the lifecycle hooks' plugins,
    and the plugins that failed to load."""
    plugins = load_plugins(args.plugin)
    for family in FAMILIES:
        print(f"{family}:")
        for name in plugins.registries[family].names():
            component = plugins.registries[family].components[name]
            print(f"  {name:<22} {component.description}  [{component.source}]")
    print("lifecycle:")
    for plugin_name, impls in _lifecycle(plugins):
        print(f"  {plugin_name:<22} {', '.join(impls)}")
    for message in plugins.broken:
        print(f"broken: {message}")
    return 0


def _lifecycle(plugins):
    found: dict[str, list[str]] = {}
    for hook in LIFECYCLE_HOOKS:
        for impl in getattr(plugins.pm.hook, hook).get_hookimpls():
            found.setdefault(impl.plugin_name, []).append(hook.removeprefix("harness_"))
    return sorted(found.items())
