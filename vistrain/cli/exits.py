"""How the CLI ends: every exception becomes one stderr line and an exit code (see docs/running.md, 'Errors and exit codes').

Typer re-exported the ``click`` package's exceptions up to 0.25 and vendors its own copy of click
(``typer._click``) since 0.26; a plugin command may still raise the separate ``click``'s. The
classes are therefore looked up in every click copy in play instead of being imported from one.
"""

from __future__ import annotations

import importlib
import re
import sys
import traceback
from types import ModuleType

from vistrain.errors import VistrainError

EXIT_OK = 0
EXIT_BUG = 1  # an unexpected exception: a bug to report
EXIT_USER = 2  # a user error: the one line says what to fix
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (128 + SIGPIPE), as git and shells report it


def one_line(text: object) -> str:
    """Fold a message onto one line, so every error stays a single stderr line."""
    return re.sub(r"\s*\n\s*", " ", str(text).strip())


def _click_exception_modules() -> list[ModuleType]:
    """Typer's own click exceptions module, then the separate ``click`` package's when installed."""
    import typer

    modules = [sys.modules[typer.BadParameter.__module__]]
    try:
        modules.append(importlib.import_module("click.exceptions"))
    except ImportError:  # typer with a vendored click does not need the click package
        pass
    return list({id(m): m for m in modules}.values())


def _classes(name: str, *extra: type) -> tuple[type, ...]:
    """Every click copy's exception class called *name* (plus *extra*)."""
    found = [getattr(m, name) for m in _click_exception_modules() if isinstance(getattr(m, name, None), type)]
    return tuple(dict.fromkeys([*found, *extra]))


def _context_for(command, args: list[str]):
    """The context of the deepest subcommand named in *args*, for errors raised without one."""
    try:
        ctx = command.make_context("vistrain", [], resilient_parsing=True)
        for token in args:
            if token.startswith("-"):
                continue
            get = getattr(ctx.command, "get_command", None)
            child = get(ctx, token) if get else None
            if child is None:
                break
            ctx = child.make_context(token, [], parent=ctx, resilient_parsing=True)
        return ctx
    except Exception:  # noqa: BLE001 - without a context the error line alone is printed
        return None


def _usage_line(ctx) -> str | None:
    try:
        return one_line(ctx.get_usage()) if ctx is not None else None
    except Exception:  # noqa: BLE001 - a usage line is a courtesy; the error line matters
        return None


def _help_hint(ctx) -> str:
    if ctx is None:
        return " (see 'vistrain --help')"
    return f" (see '{ctx.command_path} --help')"


def _plugin_at_fault(exc: BaseException) -> tuple[str, str] | None:
    """(plugin, function) of the innermost third-party plugin code on *exc*'s traceback, or None."""
    plugins = sys.modules.get("vistrain.plugins")
    if plugins is None or (exc.__traceback__ is None and getattr(exc, "frames", None) is None):
        return None  # no plugin was loaded, so none ran
    owners: dict[str, str] = {}
    for name, obj in plugins.get_plugin_manager().list_name_plugin():
        if obj is None or plugins.is_builtin(name):
            continue
        module = obj.__name__ if isinstance(obj, ModuleType) else type(obj).__module__
        top = module.split(".")[0]
        owners[module if top == "vistrain" else top] = name  # a plugin's whole package, not vistrain's
    frames = getattr(exc, "frames", None)  # a loader worker's stack (vistrain.data.worker_errors.WorkerError)
    if frames is None:
        frames = [(str(frame.f_globals.get("__name__", "")), frame.f_code.co_name)
                  for frame, _line in traceback.walk_tb(exc.__traceback__)]
    for module, function in reversed(frames):
        for prefix, name in owners.items():
            if module == prefix or module.startswith(prefix + "."):
                return name, function
    return None


def report(exc: BaseException, debug: bool, command=None, args: list[str] | None = None) -> int:
    """Print *exc* as the CLI's closing stderr line (plus the usage line for usage errors); return the exit code.

    *command* and *args* (the root click command and the arguments) give usage errors raised
    without a context, such as an option missing its value, the usage line of their subcommand.
    """
    if isinstance(exc, BrokenPipeError):  # the reader left (`vistrain ... | head`): not an error to print
        import os

        try:  # Python's recipe: the interpreter flushes stdout once more at exit; let that go nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE
    import typer  # only here: `vistrain --help` runs without Typer (see vistrain.cli.roothelp)

    if isinstance(exc, _classes("Exit", typer.Exit)):
        return int(getattr(exc, "exit_code", EXIT_OK) or 0)
    if isinstance(exc, _classes("NoArgsIsHelpError")):
        # `vistrain` (or a command group) with no arguments: the help is the answer, not an error.
        ctx = exc.ctx
        print(ctx.get_help() if ctx is not None else exc.format_message())
        return EXIT_OK
    if isinstance(exc, _classes("UsageError")):
        ctx = getattr(exc, "ctx", None)
        if ctx is None and command is not None:
            ctx = _context_for(command, list(args or []))
        usage = _usage_line(ctx)
        if usage:
            print(usage, file=sys.stderr)
        message = one_line(exc.format_message()).rstrip(".")
        plugins = sys.modules.get("vistrain.plugins")
        if plugins is not None and message.startswith("No such command"):
            message += plugins.failed_plugins_note()  # the command may be a broken plugin's
        print(f"error: {message}{_help_hint(ctx)}", file=sys.stderr)
        return EXIT_USER
    if isinstance(exc, _classes("ClickException")):  # e.g. a file argument that cannot be opened
        print(f"error: {one_line(exc.format_message())}", file=sys.stderr)
        return EXIT_USER
    if isinstance(exc, _classes("Abort", typer.Abort)) or isinstance(exc, KeyboardInterrupt):
        print("interrupted; checkpoints written so far are intact", file=sys.stderr)
        return EXIT_INTERRUPTED
    if debug:
        traceback.print_exception(exc)
    if "DataLoader worker" in str(exc):  # a loader worker's exception, or one that died (see its module)
        from vistrain.data import worker_errors

        exc = worker_errors.translate(exc) or exc
    if isinstance(exc, VistrainError):
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, MemoryError):
        print("error: out of memory; lower --batch-size or use a smaller model", file=sys.stderr)
        return EXIT_USER
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
        where = f" while writing {exc.filename}" if exc.filename else ""
        print(f"error: disk full (no space left on the device){where}; free some space or choose another --out "
              f"(checkpoints already written are intact)", file=sys.stderr)
        return EXIT_USER
    kind = type(exc).__name__
    if hasattr(exc, "type_name") and hasattr(exc, "worker"):  # a WorkerError: the type the loader worker raised
        kind = exc.type_name
    blamed = _plugin_at_fault(exc)
    if blamed is not None:  # a third-party plugin's factory, strategy, op or command raised
        plugin, function = blamed
        print(f"error: plugin {plugin!r} failed in {function}(): {kind}: {one_line(exc)} (update or fix "
              f"the plugin, or leave it out with VISTRAIN_PLUGINS; 'vistrain plugins list' shows them)", file=sys.stderr)
        return EXIT_USER
    hint = "" if debug else "; run with --debug for the traceback"
    if hasattr(exc, "worker"):
        kind += f" in loader worker {exc.worker}"
    print(f"error: unexpected {kind}: {one_line(exc)} (a bug: please report it{hint})", file=sys.stderr)
    return EXIT_BUG
