"""The ``vistrain`` command line. Commands come from plugins (built-ins included) via ``register_commands``.

This package is the only code that imports Typer. Heavy modules (torch) are imported inside
commands, so ``vistrain --help`` and the list commands start fast; the root help is printed
without Typer at all (``roothelp``) and commands are imported only when invoked (``lazy``).
"""

from __future__ import annotations

import os
import sys

from vistrain import __version__
# Aliased: the submodule vistrain.cli.report, once imported, is set as this package's attribute
# ``report`` and would replace a function imported under that name.
from vistrain.cli.exits import report as report_error

DEBUG_ENV = "VISTRAIN_DEBUG"


def _version_callback(value: bool) -> None:
    import typer

    if value:
        typer.echo(f"vistrain {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """Assemble the Typer app; its group (``LazyGroup``) lists every plugin's registered commands."""
    import typer

    from vistrain.cli.lazy import LazyGroup
    from vistrain.cli.roothelp import DESCRIPTION

    app = typer.Typer(
        name="vistrain", cls=LazyGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
        help=DESCRIPTION, context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                     help="Show the version and exit."),
        debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    ) -> None:
        """vistrain: plugin-based image-classifier training."""

    return app


def _broken_plugin_warnings() -> None:
    """Name every plugin that failed to load. Printed once the command has finished, so that a command
    ending in an error keeps to its one error line (which names them in its hint when it matters)."""
    from vistrain.plugins import plugin_infos

    for info in plugin_infos():
        if info.status == "broken":
            print(f"warning: plugin {info.name!r} failed to load: {info.error} "
                  f"(see 'vistrain plugins list')", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vistrain`` script; returns the exit code (see ``vistrain.cli.exits``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if "--debug" in args:
        args.remove("--debug")
    from vistrain.cli.roothelp import print_root_help, wants_root_help

    if wants_root_help(args):  # no Typer import: the root help is the start-up figure users feel
        try:
            return print_root_help()
        except Exception as exc:  # noqa: BLE001 - every error ends in one line
            return report_error(exc, debug)
    command = None
    try:
        import typer

        app = build_app()
        command = typer.main.get_command(app)
        result = command.main(args=args, prog_name="vistrain", standalone_mode=False)
        _broken_plugin_warnings()
        return int(result) if isinstance(result, int) else 0
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - every error ends in one line
        return report_error(exc, debug, command, args)


def run() -> None:
    """Console-script wrapper."""
    sys.exit(main())
