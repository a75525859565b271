"""MkDocs hook: the reference pages, generated from the code at every build.

``mkdocs.yml`` names this file under ``hooks:``. Nothing here is written to disk: the
pages exist only inside the build, so they cannot drift from the code they describe.

* ``reference/hooks/``: one page per hook of ``harness/hookspecs.py``, its prose taken
  from the hookspec's docstring, with the built-in plugins that implement it.
* ``reference/{datasets,models,augmentations,callbacks}.md``: every registered built-in
  component and its pydantic parameter model.
* ``reference/cli.md``: the argparse parser of ``harness/cli.py``, with the built-in
  commands (``harness/commands/`` and the modules they name) and no third party's.
* ``reference/study-file.md``: the pydantic models of the study file's tables.

The build fails (and so CI fails) when a hook parameter is not described in its
docstring, or a study-file table has no entry in ``TABLES`` below.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import re
import textwrap
import types
import typing
from collections.abc import Iterator

from pydantic_core import PydanticUndefined

HOOKS_INDEX = "reference/hooks/index.md"
GUIDES = {
    "datasets": "../datasets/index.md",
    "models": "../models.md",
    "augmentations": "../augmentations.md",
    "callbacks": "../callbacks.md",
}
TITLES = {
    "datasets": "Datasets",
    "models": "Model builders",
    "augmentations": "Augmentations",
    "callbacks": "Stopping callbacks",
}
SINGULAR = {
    "datasets": "dataset",
    "models": "model builder",
    "augmentations": "augmentation",
    "callbacks": "stopping callback",
}
#: Every top-level table of a study file, in words: ``harness.study.TOP_LEVEL_KEYS`` and
#: one table per built-in search backend, named after it.
TABLES = {
    "study": "name, budget, seed, objective(s), workers; see [`[study]`](#study)",
    "optuna": "sampler, pruner and storage of the Optuna backend; see [`[optuna]`](#optuna)",
    "kerastuner": "the KerasTuner backend's tuner; see [`[kerastuner]`](#kerastuner). A "
    "third-party backend's table is named after it too",
    "dataset": "`name` of a registered dataset and its parameters ([Datasets](datasets.md))",
    "model": "`name` of a registered model builder and its parameters "
    "([Model builders](models.md))",
    "train": "how every trial compiles and fits; see [`[train]`](#train)",
    "augment": "`[augment.<name>]`: one table per augmentation ([Augmentations](augmentations.md))",
    "callbacks": "`[callbacks.<name>]`: one table per stopping callback "
    "([Stopping callbacks](callbacks.md))",
    "enqueue": "`[[enqueue]]`: hand-picked values of searched parameters, run as the first trials",
    "profiles": "`[profiles.<name>]`: a named variant (values as `--set` would give them), "
    "selected with `--profile <name>`; see [Study files](../study-files.md#profiles)",
}


# --- MkDocs events ----------------------------------------------------------------------


def on_config(config):
    """List one nav entry per hook under the nav item that names the hooks index."""
    pages = [HOOKS_INDEX, *(f"reference/hooks/{name}.md" for name in _hookspecs())]

    def expand(items):
        for index, item in enumerate(items):
            if isinstance(item, dict):
                ((title, value),) = item.items()
                if value == HOOKS_INDEX:
                    items[index] = {title: pages}
                elif isinstance(value, list):
                    expand(value)

    expand(config["nav"] or [])
    return config


def on_files(files, config):
    """Add the generated pages to the build."""
    from mkdocs.structure.files import File  # lazy: the test suite imports this file without it

    for path, text in reference_pages().items():
        files.append(File.generated(config, path, content=text))
    return files


def reference_pages() -> dict[str, str]:
    """Path under docs/ -> Markdown of every generated page."""
    from harness.registry import FAMILIES

    plugins = _builtin_plugins()
    pages = {
        "reference/cli.md": cli_page(),
        "reference/study-file.md": study_file_page(),
        HOOKS_INDEX: hooks_index_page(plugins),
    }
    for family in FAMILIES:
        pages[f"reference/{family}.md"] = components_page(plugins, family)
    for name in _hookspecs():
        pages[f"reference/hooks/{name}.md"] = hook_page(plugins, name)
    return pages


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    """Set (a string) or unset (None) environment variables for the duration."""
    saved = {key: os.environ.get(key) for key in values}

    def apply(settings):
        for key, value in settings.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    apply(values)
    try:
        yield
    finally:
        apply(saved)


def _builtins_only() -> contextlib.AbstractContextManager:
    """No entry-point plugin and no plugin blocked, whatever the environment says."""
    return _environment(
        HARNESS_DISABLE_PLUGIN_AUTOLOAD="1", HARNESS_PLUGINS=None, HARNESS_DISABLE_PLUGINS=None
    )


def _builtin_plugins():
    """The built-in plugins only, whatever is installed or set in the environment."""
    from harness.plugins import load_plugins

    with _builtins_only():
        return load_plugins()


def _builtin_hookimpls(plugins, name: str) -> list:
    """The implementations of hook ``name`` by the built-in plugins (``plugins``) and by
    the built-in command plugins (loaded apart, before the command line is parsed)."""
    from harness.commands import BUILTIN_COMMANDS
    from harness.plugins import load_command_plugins

    with _builtins_only():
        commands = load_command_plugins(BUILTIN_COMMANDS)
    return [
        *getattr(plugins.pm.hook, name).get_hookimpls(),
        *getattr(commands.pm.hook, name).get_hookimpls(),
    ]


# --- docstrings to Markdown -------------------------------------------------------------


def markdown(doc: str, links: dict[str, str] | None = None) -> str:
    """The docstrings' reStructuredText habits in Markdown: double-backquoted literals and
    ``:role:`` targets become code (a link where ``links`` names them), a paragraph ending
    in ``::`` introduces the indented code block after it, and a short one-line paragraph
    ending in a colon (``Parameters:``, ``Example::``) becomes a heading."""
    links = links or {}

    def code(match: re.Match) -> str:
        name = match.group(1).removeprefix("~")
        return f"[`{name}`]({links[name]})" if name in links else f"`{name}`"

    def inline(text: str) -> str:
        return re.sub(r"``([^`]+)``", code, re.sub(r":\w+:`([^`]+)`", code, text))

    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []  # Markdown pieces: prose (inline markup converted) and code blocks
    prose: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        alone = (index == 0 or not lines[index - 1].strip()) and (
            index + 1 == len(lines) or not lines[index + 1].strip()
        )
        if alone and line[:1].isupper() and line.endswith(":") and len(line.split()) <= 5:
            line = "## " + line.rstrip(":")
        elif line.endswith("::"):
            line = line[:-1] if line.strip() != "::" else ""
        else:
            prose.append(line)
            index += 1
            continue
        prose.append(line)
        block, index = _indented_block(lines, index + 1)
        if block:
            language = _language(block)
            out += [inline("\n".join(prose)), "", f"```{language}", *block, "```"]
            prose = []
    return "\n".join([*out, inline("\n".join(prose))]).strip("\n")


def _language(block: list[str]) -> str:
    if block[0].startswith("["):
        return "toml"
    python = ("import ", "from ", "def ", "class ", "@")
    return "python" if any(line.startswith(python) for line in block) else "text"


def _indented_block(lines: list[str], index: int) -> tuple[list[str], int]:
    """The indented lines from ``index`` on (after blank lines), dedented; and where they end."""
    start = index
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index == len(lines) or not lines[index].startswith(" "):
        return [], start
    end = index
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" ")):
        end += 1
    while not lines[end - 1].strip():
        end -= 1
    return textwrap.dedent("\n".join(lines[index:end])).splitlines(), end


def _cell(text: str | None) -> str:
    """Text for a Markdown table cell."""
    return markdown(_escape_html(text or "")).replace("\n", " ").replace("|", "\\|")


def _escape_html(text: str) -> str:
    """``<`` and ``>`` outside code spans as entities, so that ``<name>-<NAME>`` in a help
    text shows as written instead of vanishing as an unknown HTML tag."""
    pieces = re.split(r"(``[^`]+``|`[^`]+`)", text)
    return "".join(
        piece if piece.startswith("`") else piece.replace("<", "&lt;").replace(">", "&gt;")
        for piece in pieces
    )


# --- hooks ------------------------------------------------------------------------------


def _hookspecs() -> dict[str, typing.Callable]:
    """Every hookspec function, in the order hookspecs.py defines them."""
    from harness import hookspecs

    marker = f"{hookspecs.PROJECT}_spec"
    return {name: f for name, f in vars(hookspecs).items() if hasattr(f, marker)}


def _summary_and_body(function) -> tuple[str, str]:
    summary, _, body = inspect.cleandoc(function.__doc__ or "").partition("\n\n")
    return " ".join(summary.split()), body


def _signature(function) -> str:
    parameters = [
        f"{p.name}: {p.annotation}" if p.annotation is not p.empty else p.name
        for p in inspect.signature(function).parameters.values()
    ]
    returns = inspect.signature(function).return_annotation
    head = f"def {function.__name__}("
    one_line = f"{head}{', '.join(parameters)}) -> {returns}: ..."
    if len(one_line) <= 88:
        return one_line
    return head + "\n" + "".join(f"    {p},\n" for p in parameters) + f") -> {returns}: ..."


def _commands_added(impl) -> list[str]:
    """The commands a ``harness_register_commands`` implementation adds."""
    subparsers = argparse.ArgumentParser(prog="harness").add_subparsers()
    impl.function(subparsers=subparsers, add_common=lambda parser: None)
    return list(subparsers.choices)


def _implementations(plugins, name: str) -> list[str]:
    """One Markdown list item per built-in plugin implementing hook ``name``."""
    family = name.removeprefix("harness_register_")
    items = []
    for impl in _builtin_hookimpls(plugins, name):
        module = getattr(impl.plugin, "__name__", impl.plugin_name)
        item = f"* `{impl.plugin_name}` (`{module}`)"
        if name == "harness_register_commands":
            item += ": adds " + ", ".join(
                f"[`harness {command}`](../cli.md#harness-{command})"
                for command in _commands_added(impl)
            )
        elif family in plugins.registries:
            registered = [
                f"[`{c.name}`](../{family}.md#{c.name})"
                for c in plugins.registries[family].components.values()
                if c.plugin == impl.plugin_name
            ]
            item += ": registers " + ", ".join(registered)
        items.append(item)
    return items


def hook_page(plugins, name: str) -> str:
    function = _hookspecs()[name]
    summary, body = _summary_and_body(function)
    for parameter in inspect.signature(function).parameters:
        if f"``{parameter}``" not in function.__doc__:
            raise ValueError(f"hookspecs.{name}: parameter {parameter!r} is not described")
    links = {other: f"{other}.md" for other in _hookspecs()}
    options = getattr(plugins.pm.hook, name).spec.opts
    flags = [option for option in ("firstresult", "historic") if options.get(option)]
    implemented = _implementations(plugins, name) or ["No built-in plugin implements it."]
    return "\n".join(
        [
            f"# {name}",
            "",
            "```python",
            "@harness.hookimpl",
            _signature(function),
            "```",
            "",
            markdown(summary, links),
            "",
            *([f"pluggy options: {', '.join(flags)}.", ""] if flags else []),
            markdown(body, links),
            "",
            "## Built-in implementations",
            "",
            *implemented,
            "",
        ]
    )


def hooks_index_page(plugins) -> str:
    from harness import hookspecs

    rows = []
    for name, function in _hookspecs().items():
        summary = _summary_and_body(function)[0].split(". ")[0].rstrip(".")
        users = (
            ", ".join(f"`{impl.plugin_name}`" for impl in _builtin_hookimpls(plugins, name))
            or "none"
        )
        rows.append(f"| [`{name}`]({name}.md) | {_cell(summary)} | {users} |")
    links = {name: f"{name}.md" for name in _hookspecs()}
    return "\n".join(
        [
            "# Hooks",
            "",
            markdown(hookspecs.__doc__, links),
            "",
            "| hook | what it is for | built-in plugins |",
            "|---|---|---|",
            *rows,
            "",
        ]
    )


# --- pydantic models --------------------------------------------------------------------


def _constraints(items) -> list[str]:
    """``>= 1``, ``< 1``, ``length <= 100`` from pydantic / annotated-types metadata."""
    found = []
    for item in items:
        if hasattr(item, "metadata") and not hasattr(item, "ge"):  # a FieldInfo
            found += _constraints(item.metadata)
            continue
        for attribute, text in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(item, attribute, None) is not None:
                found.append(f"{text} {getattr(item, attribute)}")
        for attribute, text in (("min_length", ">="), ("max_length", "<=")):
            if getattr(item, attribute, None) is not None:
                found.append(f"length {text} {getattr(item, attribute)}")
    return found


def type_text(annotation, metadata=()) -> str:
    """A field's type as a reader writes it in TOML: `int` >= 1, `"rgb"` or `"grayscale"`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0], [*metadata, *args[1:]])
    bounds = ", ".join(_constraints(metadata))
    suffix = f" ({bounds})" if bounds else ""
    if origin in (typing.Union, types.UnionType):
        members = [type_text(arg) for arg in args if arg is not type(None)]
        return " or ".join(members) + suffix
    if origin is typing.Literal:
        return " or ".join(f"`{toml(value)}`" for value in args)
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"`[{', '.join(_bare(arg) for arg in args)}]`" + suffix
        item = type_text(args[0]) if args else "values"
        return f"list of {f'({item})' if ' or ' in item else item}" + suffix
    return f"`{_bare(annotation)}`" + suffix


def _bare(annotation) -> str:
    if typing.get_origin(annotation) is typing.Annotated:
        return _bare(typing.get_args(annotation)[0])
    return getattr(annotation, "__name__", str(annotation))


def search_kinds(annotation) -> list[str]:
    """The distributions a value of this type may be drawn from: `int`, `float`, `choice`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return search_kinds(args[0])
    if origin in (typing.Union, types.UnionType):
        kinds = {kind for arg in args for kind in search_kinds(arg)}
        return [kind for kind in ("int", "float", "choice") if kind in kinds]
    if origin is typing.Literal or annotation in (str, bool):
        return ["choice"]
    return {int: ["int", "choice"], float: ["float", "choice"]}.get(annotation, [])


def toml(value) -> str:
    """A value as a study file writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and len(repr(value)) > 10:
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory else field.default
    return "unset" if value is None or value is PydanticUndefined else f"`{toml(value)}`"


def parameters_table(model, searchable: bool = True) -> list[str]:
    """One row per field of a pydantic model."""
    if not model.model_fields:
        return ["Takes no parameters."]
    header = "| parameter | type | default | search | description |"
    if not searchable:
        header = header.replace(" search |", "")
    rows = [header, "|---" * (header.count("|") - 1) + "|"]
    for name, field in model.model_fields.items():
        kinds = ", ".join(f"`{kind}`" for kind in search_kinds(field.annotation)) or "no"
        cells = [f"`{name}`", type_text(field.annotation, field.metadata), _default(field)]
        cells += [kinds] if searchable else []
        rows.append("| " + " | ".join([*cells, _cell(field.description)]) + " |")
    return rows


def components_page(plugins, family: str) -> str:
    from harness.registry import NoParams

    registry = plugins.registries[family]
    singular = SINGULAR[family]
    lines = [
        f"# {TITLES[family]}",
        "",
        f"Every built-in {singular}, generated from its plugin's parameter model; the "
        f"[guide]({GUIDES[family]}) explains them with examples. A parameter is written "
        "as a literal or, where the **search** column names a distribution, searched: "
        "`{int = [8, 64]}`, `{float = [0.0, 0.5]}`, `{choice = [...]}` (see "
        "[Search space](../study-files.md#search-space)).",
        "",
        f"| {singular} | description | plugin |",
        "|---|---|---|",
        *(
            f"| [`{c.name}`](#{c.name}) | {_cell(c.description)} | `{c.plugin}` |"
            for c in registry.components.values()
        ),
    ]
    for component in registry.components.values():
        facts = [f"Plugin `{component.plugin}` (`{component.function.__module__}`)"]
        if family == "datasets":
            facts.append("tasks: " + (", ".join(component.tasks or ()) or "not declared"))
            facts.append(f"data check: {'yes' if component.check else 'no'}")
            facts.append(f"image decoder: {'yes' if component.decoder else 'no'}")
        intro = component.params.__doc__ if component.params is not NoParams else None
        lines += ["", f"## {component.name}", "", component.description, "", "; ".join(facts)]
        lines += ["", markdown(intro)] if intro else []
        lines += ["", *parameters_table(component.params)]
    return "\n".join(lines) + "\n"


def study_file_page() -> str:
    from harness import study
    from harness.backends.base import load_backend
    from harness.registry import BUILT_IN_BACKENDS

    backends = {name: load_backend(name).Config for name in BUILT_IN_BACKENDS}
    if set(TABLES) != {*study.TOP_LEVEL_KEYS, *backends}:
        raise ValueError(f"gen_reference.TABLES does not match {study.TOP_LEVEL_KEYS} + {backends}")
    sections = {"study": study.StudySection, **backends, "train": study.TrainParams}
    lines = [
        "# Study file",
        "",
        "The tables of a study file and their keys, generated from the pydantic models "
        "that validate them (`harness/study.py`, and each search backend's `Config`); "
        "[Study files](../study-files.md) explains them with examples. Only `[study]`, "
        "`[dataset]` and `[model]` are required.",
        "",
        "| table | what |",
        "|---|---|",
        *(f"| `{key}` | {text} |" for key, text in TABLES.items()),
    ]
    for key, model in sections.items():
        searchable = key == "train"
        note = (
            "Every key can be searched, like a plugin's parameters."
            if searchable
            else "Literal values only: these keys cannot be searched."
        )
        lines += ["", f"## [{key}]", "", markdown(model.__doc__), "", note, ""]
        lines += parameters_table(model, searchable=searchable)
    return "\n".join(lines) + "\n"


# --- command line -----------------------------------------------------------------------


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=88)


def _arguments_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | description |", "|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        invocation = parser._get_formatter()._format_action_invocation(action)
        if not action.help:
            raise ValueError(
                f"{parser.prog} {invocation}: no help text; describe it where its command's "
                "parser is built (harness/commands/)"
            )
        text = action.help
        default = action.default
        if default not in (None, False, [], argparse.SUPPRESS) and "default" not in text:
            text += f" (default: {default})"
        if action.required and action.option_strings:
            text += " (required)"
        rows.append(f"| `{invocation}` | {_cell(text)} |")
    return rows


def cli_page() -> str:
    from harness.cli import build_parser

    with _builtins_only():
        parser = build_parser()
    parser.formatter_class = _formatter
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {choice.dest: choice.help for choice in commands._choices_actions}
    lines = [
        "# Command line",
        "",
        "Every `harness` command and option, generated from the argument parser "
        "(`harness.cli.build_parser`). `harness COMMAND --help` prints the same.",
        "",
        "```text",
        parser.format_usage().strip(),
        "```",
        "",
        "| command | what it does |",
        "|---|---|",
        *(f"| [`harness {n}`](#harness-{n}) | {_cell(helps.get(n))} |" for n in commands.choices),
    ]
    for name, command in commands.choices.items():
        command.formatter_class = _formatter
        what = helps.get(name) or ""
        what = _escape_html(what)
        lines += ["", f"## harness {name}", "", what[:1].upper() + what[1:] + ".", ""]
        lines += ["```text", command.format_usage().strip(), "```", ""]
        lines += _arguments_table(command)
    return "\n".join(lines) + "\n"
