"""``vistrain plugins list|doctor|install|uninstall|new``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from vistrain.cli.lists import print_table
from vistrain.errors import PluginError

app = typer.Typer(no_args_is_help=True)


def _registered_text(kinds: dict[str, list[str]]) -> str:
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in kinds.items())


@app.command("list")
def list_command(
    names: Optional[List[str]] = typer.Argument(None, help="Show only these plugins."),
    all_: bool = typer.Option(False, "--all", "-a", help="Also show the built-in plugins."),
) -> None:
    """List installed plugins: distribution, hooks, what each registered, and status."""
    from vistrain.plugins import ENV_VAR, plugin_infos, registered_by_plugin

    infos = [i for i in plugin_infos() if all_ or not (i.builtin or i.source == "in-process")]
    if names:
        infos = [i for i in infos if i.name in names or i.dist in names]
    registered, errors = registered_by_plugin()
    if not infos:
        typer.echo("no third-party plugins installed (pip install one, or 'vistrain plugins new NAME'; "
                   "--all shows the built-ins)" if not names else f"no plugin named {', '.join(names)}")
    else:
        table = Table(box=None, pad_edge=False)
        for col in ("name", "distribution", "hooks", "registered", "status"):
            table.add_column(col, overflow="fold")
        for info in infos:
            status = info.status if info.status == "ok" else f"{info.status}: {info.error}"
            hooks = ", ".join(h.removeprefix("register_") for h in info.hooks)
            table.add_row(info.name, info.source, hooks, _registered_text(registered.get(info.name, {})), status)
        print_table(table)
    for error in errors:
        typer.echo(f"error: {error}", err=True)
    typer.echo(f"({ENV_VAR}=name1,name2 loads only those third-party plugins, {ENV_VAR}=none loads none)")


@app.command("doctor")
def doctor_command(
    all_: bool = typer.Option(False, "--all", "-a", help="Also check the built-in plugins."),
) -> None:
    """Import and check every plugin; exit 1 and say what is broken if anything is."""
    from vistrain.plugin_doctor import diagnose

    checks = diagnose(include_builtin=all_)
    if not checks:
        typer.echo("no third-party plugins installed; nothing to check (--all checks the built-ins)")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("plugin", "distribution", "import ms", "--help cost ms", "registered", "status"):
        table.add_column(col, justify="right" if "ms" in col or col == "registered" else "left")
    for c in checks:
        status = "disabled (not checked)" if c.status == "disabled" else ("ok" if not c.problems else "PROBLEM")
        loaded = c.status != "disabled" and c.status != "broken"
        table.add_row(c.name, c.source, f"{1000 * c.import_s:.1f}" if loaded else "-",
                      f"{1000 * c.help_cost_s:.1f}" if loaded else "-", str(c.registered), status)
    print_table(table)
    problems = [(c.name, p) for c in checks for p in c.problems]
    for name, problem in problems:
        typer.echo(f"{name}: {problem}", err=True)
    total = sum(c.help_cost_s for c in checks)
    typer.echo(f"third-party plugins add {1000 * total:.1f} ms to every vistrain start-up (imports in load order)")
    if problems:
        typer.echo(f"{len(problems)} problem(s) found; fix them or uninstall the plugin "
                   f"('vistrain plugins uninstall NAME'), or leave it out with VISTRAIN_PLUGINS", err=True)
        raise typer.Exit(1)
    typer.echo(f"no problems found in {len(checks)} plugin(s)")


def _installed_entry_points() -> dict[str, tuple[str, str]]:
    """``{entry-point name: (distribution, version)}`` of the ``vistrain`` group, read afresh."""
    import importlib
    from importlib import metadata

    from vistrain.plugins import ENTRY_POINT_GROUP

    importlib.invalidate_caches()
    return {ep.name: (ep.dist.name if ep.dist else "", ep.dist.version if ep.dist else "")
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    code = subprocess.call(cmd)
    if code != 0:
        raise PluginError(f"'{' '.join(cmd[2:])}' failed with exit code {code}", hint="see pip's output above")


def _show(names: list[str]) -> None:
    """List *names* in a fresh interpreter, which sees what pip just installed (.pth files included)."""
    subprocess.call([sys.executable, "-m", "vistrain", "plugins", "list", *names])


@app.command("install")
def install_command(
    packages: List[str] = typer.Argument(..., help="Package names, paths or URLs, as pip takes them."),
    editable: bool = typer.Option(False, "--editable", "-e", help="Install local paths in editable mode."),
    upgrade: bool = typer.Option(False, "--upgrade", "-U", help="Upgrade packages already installed."),
    no_deps: bool = typer.Option(False, "--no-deps", help="Do not install the packages' dependencies."),
    no_build_isolation: bool = typer.Option(False, "--no-build-isolation",
                                            help="Build with the packages already installed (offline)."),
) -> None:
    """Install plugins with pip into the environment vistrain runs in, then show what they registered."""
    before = _installed_entry_points()
    flags = [flag for flag, on in (("--upgrade", upgrade), ("--no-deps", no_deps),
                                   ("--no-build-isolation", no_build_isolation)) if on]
    targets: list[str] = []
    for package in packages:
        targets += ["-e", package] if editable else [package]
    _pip("install", *flags, *targets)
    after = _installed_entry_points()
    changed = sorted(name for name, dist in after.items() if before.get(name) != dist)
    if not changed:
        wanted = {p.lower().replace("_", "-") for p in packages}
        changed = sorted(n for n, (dist, _) in after.items() if dist.lower().replace("_", "-") in wanted)
    if not changed:
        typer.echo("installed, but no new vistrain plugin appeared (the package declares no entry point "
                   "in the 'vistrain' group)")
        return
    _show(changed)


@app.command("uninstall")
def uninstall_command(
    names: List[str] = typer.Argument(..., help="Plugin (entry-point) or distribution names."),
) -> None:
    """Uninstall plugins with pip from the environment vistrain runs in."""
    installed = _installed_entry_points()
    dists: list[str] = []
    for name in names:
        if name in installed:
            dists.append(installed[name][0])
        elif any(dist.lower() == name.lower() for dist, _ in installed.values()):
            dists.append(name)
        else:
            from vistrain.errors import suggest

            choices = set(installed) | {d for d, _ in installed.values()}
            raise PluginError(f"no installed plugin named {name!r}.{suggest(name, choices)}",
                              hint="run 'vistrain plugins list' to see them")
    _pip("uninstall", "--yes", *dict.fromkeys(dists))


@app.command("new")
def new_command(
    name: str = typer.Argument(..., help="Plugin name, e.g. myplug (also the folder and the package)."),
    directory: Path = typer.Option(Path("."), "--dir", help="Where to create the package folder."),
) -> None:
    """Write a ready-to-install plugin package with a model, a listener and passing tests."""
    from vistrain.cli.skeleton import write_skeleton

    folder = write_skeleton(name, directory)
    typer.echo(f"wrote {folder}; next: pip install -e {folder} && python -m pytest {folder}")
