"""The root command group: plugin commands are listed from their registered help and imported on use.

A command registered with ``help=`` stays a light placeholder until it is invoked, so
``vistrain plugins list`` imports only the plugins command's module, not every command's.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand, TyperGroup

from vistrain.errors import PluginError

if TYPE_CHECKING:  # typer >= 0.26 vendors click as typer._click; older typer uses the click package
    from typer import _click


class _Placeholder(TyperCommand):
    """Stands in for a registered command in listings until the command is resolved."""

    def __init__(self, name: str, help_text: str, entry: Any):
        super().__init__(name=name, help=help_text, short_help=help_text)
        self.entry = entry


def to_click(entry: Any) -> _click.Command | None:
    """Import a registered command and turn it into a Click command; warn and return None if it is unusable."""
    try:
        target = entry.load()
    except PluginError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return None
    help_text = entry.meta.get("help")
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = entry.name
        if help_text:
            group.help = group.short_help = help_text
        return group
    if callable(target):
        single = typer.Typer()
        single.command(name=entry.name, help=help_text)(target)
        return typer.main.get_command(single)
    print(f"warning: plugin {entry.plugin!r} registered command {entry.name!r} that is neither a "
          f"Typer app nor a function", file=sys.stderr)
    return None


class LazyGroup(TyperGroup):
    """A Typer group filled from the command registry; commands are imported when resolved."""

    def __init__(self, **attrs: Any):
        super().__init__(**attrs)
        from vistrain.plugins import registry

        for entry in registry("command"):
            help_text = entry.meta.get("help")
            if help_text:
                self.commands[entry.name] = _Placeholder(entry.name, str(help_text), entry)
            else:  # without help the listing needs the command's docstring: import it now
                command = to_click(entry)
                if command is not None:
                    self.commands[entry.name] = command

    def resolve_command(self, ctx: _click.Context, args: list[str]):
        """Resolve the invoked command, importing it if it is still a placeholder."""
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, _Placeholder):
            command.entry.load()  # a plugin command that cannot be imported: its PluginError is the one line
            real = to_click(command.entry)
            if real is None:
                ctx.fail(f"command {name!r} could not be loaded (see the warning above)")
            self.commands[command.name] = command = real
        return name, command, rest
