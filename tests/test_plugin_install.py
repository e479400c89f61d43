"""``vistrain plugins new/install/uninstall`` against a throwaway virtual environment.

The venv has no packages of its own: a .pth file puts this tree and the test environment's
site-packages on its path, so pip (run by vistrain as ``sys.executable -m pip``) installs into
the throwaway venv and nowhere else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from plugin_env import ROOT


@pytest.fixture(scope="module")
def env_python(tmp_path_factory) -> Path:
    """A venv whose python sees this tree and the test environment's packages; returns its python."""
    home = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(home)
    python = home / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_vistrain_tests.pth").write_text(f"{ROOT}\n{sysconfig.get_paths()['purelib']}\n")
    return python


def run(python: Path, *args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VISTRAIN_PLUGINS")}
    return subprocess.run([str(python), *map(str, args)], env=env, capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_new_install_pytest_list_uninstall(env_python, tmp_path):
    out = run(env_python, "-m", "vistrain", "plugins", "new", "myplug", "--dir", tmp_path)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "myplug"
    assert (folder / "pyproject.toml").is_file() and (folder / "src" / "myplug" / "plugin.py").is_file()
    again = run(env_python, "-m", "vistrain", "plugins", "new", "myplug", "--dir", tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr

    out = run(env_python, "-m", "vistrain", "plugins", "install", "--no-deps", "--no-build-isolation", folder)
    assert out.returncode == 0, out.stderr + out.stdout
    row = next(line for line in out.stdout.splitlines() if line.startswith("myplug "))
    assert "myplug 0.1.0" in row and "model: myplug-net" in row and row.rstrip().endswith("ok")
    purelib = run(env_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    assert (Path(purelib) / "myplug-0.1.0.dist-info").is_dir()  # into the venv vistrain runs in

    tests = run(env_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", folder, cwd=tmp_path)
    assert tests.returncode == 0 and "3 passed" in tests.stdout, tests.stdout + tests.stderr

    listed = run(env_python, "-m", "vistrain", "plugins", "list")
    assert any(line.startswith("myplug ") for line in listed.stdout.splitlines())

    out = run(env_python, "-m", "vistrain", "plugins", "uninstall", "myplug")
    assert out.returncode == 0, out.stderr
    assert not (Path(purelib) / "myplug-0.1.0.dist-info").exists()
    listed = run(env_python, "-m", "vistrain", "plugins", "list")
    assert listed.returncode == 0 and not any(line.startswith("myplug ") for line in listed.stdout.splitlines())

    out = run(env_python, "-m", "vistrain", "plugins", "uninstall", "myplugg")
    assert out.returncode == 2 and "no installed plugin named 'myplugg'" in out.stderr


def test_new_rejects_a_bad_name(tmp_path, cli):
    code, _, err = cli("plugins", "new", "9lives", "--dir", tmp_path)
    assert code == 2 and "plugin name '9lives' is not valid" in err
    assert not (tmp_path / "9lives").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX venv layout")
def test_install_failure_is_one_line(env_python, tmp_path):
    out = run(env_python, "-m", "vistrain", "plugins", "install", "--no-deps", "--no-build-isolation",
              tmp_path / "missing")
    assert out.returncode == 2 and "failed with exit code" in out.stderr and "Traceback" not in out.stderr
