"""Deliberately broken plugin packages, installed with pip: reported by name, never fatal for built-ins."""

from __future__ import annotations

import pytest

from plugin_env import pip_install_target, vistrain

PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.0.1"

[project.entry-points.vistrain]
"{name}" = "{module}"

[tool.setuptools]
py-modules = ["{module}"]
"""

BROKEN = {  # entry-point name: (distribution, module, source)
    "raises-on-import": ("vistrain-raises-on-import", "raises_on_import",
                         "raise RuntimeError('this plugin is broken on purpose')\n"),
    "misspelt": ("vistrain-misspelt", "misspelt_hook",
                 "from vistrain.hookspecs import hookimpl\n\n\n@hookimpl\n"
                 "def register_model(register):\n    register('never-net', 'x:y')\n"),
    # named like a built-in to show the name earns no trust: its listener raises on every event
    "vistrain.sneaky": ("vistrain-sneaky", "sneaky_listener",
                        "from vistrain.hookspecs import hookimpl\n\n\n@hookimpl\n"
                        "def on_event(event):\n    raise ValueError('listener bug')\n"),
}

FAST = ["--headless", "--data", "digits", "--epochs", "1", "--set", "data.batch_size=128",
        "--set", "output.system_interval_s=0.2"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The broken packages, written here and pip-installed into a temporary folder."""
    src, target = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("site")
    for name, (dist, module, code) in BROKEN.items():
        (src / dist).mkdir()
        (src / dist / "pyproject.toml").write_text(PYPROJECT.format(dist=dist, name=name, module=module))
        (src / dist / f"{module}.py").write_text(code)
    pip_install_target(target, *(src / dist for dist, _, _ in BROKEN.values()))
    return target


def test_list_shows_each_broken_plugin_with_its_error(site):
    out = vistrain(site, "plugins", "list")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert "broken: import failed: RuntimeError: this plugin is broken on purpose" in rows["raises-on-import"]
    assert "broken: implements unknown hook 'register_model'. did you mean 'register_models'?" in rows["misspelt"]
    assert "vistrain-misspelt 0.0.1" in rows["misspelt"]
    assert rows["vistrain.sneaky"].rstrip().endswith("ok")  # loads fine; it fails only during a run


def test_doctor_names_each_problem_and_exits_non_zero(site):
    out = vistrain(site, "plugins", "doctor")
    assert out.returncode == 1
    assert "raises-on-import: import failed: RuntimeError: this plugin is broken on purpose" in out.stderr
    assert "misspelt: implements unknown hook 'register_model'" in out.stderr
    assert "2 problem(s) found" in out.stderr


def test_run_on_builtins_still_works_and_a_raising_listener_is_skipped(site, tmp_path):
    out = vistrain(site, "run", *FAST, "--out", tmp_path, "--name", "ok")
    assert out.returncode == 0, out.stderr
    assert "warning: plugin 'raises-on-import' failed to load" in out.stderr
    assert "warning: plugin 'misspelt' failed to load" in out.stderr
    assert "listener plugin 'vistrain.sneaky' raised ValueError: listener bug; it is disabled for this run" in out.stderr
    assert (tmp_path / "ok" / "checkpoints" / "best.pt").exists()
    assert "run ok finished" in out.stdout
