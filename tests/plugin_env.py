"""Install plugin packages with pip into a temporary folder and run vistrain over them in a subprocess.

Nothing is installed into the environment the tests run in: ``pip install --target TMP`` puts
the packages and their ``*.dist-info`` there, and a subprocess with ``PYTHONPATH=TMP:<tree>``
finds their entry points through Python's own ``importlib.metadata``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "plugins"


def pip_install_target(target: Path, *packages: Path) -> None:
    """``pip install --no-deps --no-build-isolation --target TARGET PACKAGES`` (offline, no build venv)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--no-cache-dir", "--target", str(target), *map(str, packages)],
                   check=True, capture_output=True, text=True)


def env_with(target: Path | None, plugins: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a subprocess that sees the plugins installed in *target*."""
    env = dict(os.environ)
    paths = ([str(target)] if target else []) + [str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    if plugins is None:
        env.pop("VISTRAIN_PLUGINS", None)
    else:
        env["VISTRAIN_PLUGINS"] = plugins
    env.update(extra)
    return env


def vistrain(target: Path | None, *args, plugins: str | None = None, cwd: Path | None = None,
             timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``python -m vistrain ARGS`` with *target*'s plugins installed; *plugins* sets VISTRAIN_PLUGINS."""
    return subprocess.run([sys.executable, "-m", "vistrain", *map(str, args)], env=env_with(target, plugins),
                          capture_output=True, text=True, cwd=cwd, timeout=timeout)
