"""``vistrain`` and ``vistrain --help`` without Typer: the command list comes from the registry.

Building the Typer app and its rich help costs more than everything else at start-up, and the
root help needs only each command's name and registered ``help``. Options are declared here
once and used by the Typer root callback too, so the two cannot drift apart.
"""

from __future__ import annotations

import shutil
import sys
import textwrap

DESCRIPTION = "Train image classifiers from the terminal and see what the training is doing."

# (flags, help) of the root options; the Typer callback in vistrain.cli declares the same ones.
ROOT_OPTIONS: tuple[tuple[str, str], ...] = (
    ("--version", "Show the version and exit."),
    ("--debug", "Show full tracebacks on errors."),
    ("-h, --help", "Show this message and exit."),
)

HELP_FLAGS = ("-h", "--help")


def wants_root_help(args: list[str]) -> bool:
    """Whether *args* (without ``--debug``) asks only for the root help."""
    return not args or (len(args) == 1 and args[0] in HELP_FLAGS)


def _rows(title: str, rows: list[tuple[str, str]], width: int) -> list[str]:
    if not rows:
        return []
    first = max(len(name) for name, _ in rows) + 4
    lines = [f"{title}:"]
    for name, text in rows:
        wrapped = textwrap.wrap(text, max(20, width - first)) or [""]
        lines.append(f"  {name.ljust(first - 2)}{wrapped[0]}")
        lines.extend(" " * first + more for more in wrapped[1:])
    return lines + [""]


def root_help() -> str:
    """The root help text: usage, description, options and every registered command."""
    from vistrain.plugins import is_builtin, registry

    width = min(100, shutil.get_terminal_size((80, 24)).columns)
    commands = []
    for entry in registry("command"):
        text = str(entry.meta.get("help") or "")
        if not text:
            target = entry.factory if not isinstance(entry.factory, str) else None
            text = ((getattr(target, "__doc__", None) or "").strip().splitlines() or [""])[0]
        if not is_builtin(entry.plugin):
            text = f"{text} [plugin {entry.plugin}]".strip()
        commands.append((entry.name, text))
    lines = ["Usage: vistrain [OPTIONS] COMMAND [ARGS]...", "", f"  {DESCRIPTION}", ""]
    lines += _rows("Options", list(ROOT_OPTIONS), width)
    lines += _rows("Commands", commands, width)
    lines.append("Run 'vistrain COMMAND --help' for a command's options.")
    return "\n".join(lines)


def print_root_help() -> int:
    """Print the root help (and any broken plugin's warning on stderr); returns the exit code."""
    from vistrain.plugins import plugin_infos

    text = root_help()
    for info in plugin_infos():
        if info.status == "broken":
            print(f"warning: plugin {info.name!r} failed to load: {info.error} (see 'vistrain plugins list')",
                  file=sys.stderr)
    print(text)
    return 0
