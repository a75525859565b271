"""The built-in ``harness`` commands, one module per command.

Each module is a plugin like any third party's: its ``harness_register_commands``
adds its parser (``add_parser(subparsers, add_common)``), whose ``handler`` default
runs the command. :mod:`harness.cli` only asks the hook for every command.
"""

#: The built-in command plugins, by short name, in the order ``harness --help`` lists their
#: commands. Like any plugin module, none imports TensorFlow at import time.
BUILTIN_COMMANDS: tuple[tuple[str, str], ...] = (
    ("run_command", "harness.commands.run"),
    ("worker_command", "harness.commands.worker"),
    ("validate_command", "harness.commands.validate"),
    ("show_command", "harness.commands.show"),
    ("evaluate_command", "harness.commands.evaluate"),
    ("plugins_command", "harness.commands.plugins"),
    ("tensorboard_command", "harness.serve"),
    ("report_command", "harness.report"),
    ("export_command", "harness.export"),
    ("predict_command", "harness.predict"),
    ("ensemble_command", "harness.ensemble_command"),
)
