"""Plugin loading, every registry hook, the event hook, VISTRAIN_PLUGINS and failure isolation."""

from __future__ import annotations

import inspect
import sys
import types
from pathlib import Path

import pytest

from vistrain import hookspecs, plugins
from vistrain.errors import PluginError, UnknownNameError
from vistrain.hookspecs import hookimpl

HOOKS = [name for name, obj in vars(hookspecs).items()
         if callable(obj) and hasattr(obj, "vistrain_spec")]


def test_every_hook_is_typed_documented_and_in_the_authors_guide():
    guide = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text()
    assert set(HOOKS) >= {"register_models", "register_datasets", "register_augmentations", "register_strategies",
                          "register_optimizers", "register_schedulers", "register_commands", "on_event"}
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and len(fn.__doc__.strip()) > 40, name
        sig = inspect.signature(fn)
        assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()), name
        assert f"`{name}(" in guide, f"{name} missing from docs/plugins.md"


@pytest.mark.parametrize("kind, expected", [
    ("model", "lenet5"), ("dataset", "mnist5k"), ("strategy", "supervised"), ("optimizer", "adamw"),
    ("scheduler", "onecycle"), ("command", "run"),
])
def test_builtin_registries_are_filled_by_builtin_plugins(kind, expected):
    entry = plugins.registry(kind).entry(expected)
    assert entry.plugin.startswith("vistrain.")


def test_builtin_plugins_load_without_torch():
    code = ("import sys; from vistrain import plugins;"
            "[plugins.registry(k).names() for k in plugins.REGISTRY_HOOKS];"
            "print('torch' in sys.modules)")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class FakePlugin:
    """Registers one item in every registry and records events."""

    def __init__(self):
        self.events = []

    @hookimpl
    def register_models(self, register):
        register("fake-net", lambda num_classes, in_chans, input_size, **kw: None, description="fake")

    @hookimpl
    def register_datasets(self, register):
        register("fake-data", lambda arg, cfg: None)

    @hookimpl
    def register_augmentations(self, register):
        register("fake-op", lambda img, rng: img)

    @hookimpl
    def register_strategies(self, register):
        register("fake-strategy", lambda ctx: {})

    @hookimpl
    def register_optimizers(self, register):
        register("fake-opt", lambda params, cfg: None)

    @hookimpl
    def register_schedulers(self, register):
        register("fake-sched", lambda opt, cfg, total, per_epoch: None)

    @hookimpl
    def register_commands(self, register):
        def hello(name: str = "world") -> None:
            """Say hello."""
            print(f"hello {name}")

        register("hello", hello, help="Say hello.")

    @hookimpl
    def on_event(self, event):
        self.events.append(event)


@pytest.mark.parametrize("kind, name", [
    ("model", "fake-net"), ("dataset", "fake-data"), ("augmentation", "fake-op"), ("strategy", "fake-strategy"),
    ("optimizer", "fake-opt"), ("scheduler", "fake-sched"), ("command", "hello"),
])
def test_every_registry_hook_accepts_a_plugin(kind, name):
    plugins.register_plugin(FakePlugin(), "fake")
    try:
        entry = plugins.registry(kind).entry(name)
        assert entry.plugin == "fake"
    finally:
        plugins.unregister_plugin("fake")
    assert name not in plugins.registry(kind)


def test_plugin_command_runs_through_the_cli(cli):
    plugins.register_plugin(FakePlugin(), "fake")
    try:
        code, out, _ = cli("hello", "--name", "vistrain")
    finally:
        plugins.unregister_plugin("fake")
    assert code == 0 and "hello vistrain" in out


def test_event_hook_reaches_listeners():
    from vistrain.dispatch import EventDispatcher
    from vistrain.events import Log

    fake = FakePlugin()
    plugins.register_plugin(fake, "fake")
    try:
        EventDispatcher(plugins.get_plugin_manager())(Log(level="info", message="hi"))
    finally:
        plugins.unregister_plugin("fake")
    assert [e.message for e in fake.events] == ["hi"]


def test_third_party_listener_that_raises_is_disabled_not_fatal(capsys):
    from vistrain.dispatch import EventDispatcher
    from vistrain.events import Log

    class Broken:
        @hookimpl
        def on_event(self, event):
            raise ValueError("boom")

    fake = FakePlugin()
    plugins.register_plugin(Broken(), "broken")
    plugins.register_plugin(fake, "fake")
    try:
        emit = EventDispatcher(plugins.get_plugin_manager())
        emit(Log(level="info", message="one"))
        emit(Log(level="info", message="two"))
    finally:
        plugins.unregister_plugin("broken")
        plugins.unregister_plugin("fake")
    assert "broken" in emit.disabled
    assert [e.message for e in fake.events][-1] == "two"
    assert "listener plugin 'broken' raised ValueError" in capsys.readouterr().err


def test_duplicate_name_names_both_plugins():
    class Dup:
        @hookimpl
        def register_models(self, register):
            register("lenet5", lambda *a, **k: None)

    plugins.register_plugin(Dup(), "dup")
    try:
        with pytest.raises(PluginError, match=r"'vistrain\.models\.builtin'.*'dup'"):
            plugins.registry("model").names()
    finally:
        plugins.unregister_plugin("dup")


def test_unknown_name_suggests_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'lenet5'"):
        plugins.registry("model").get("lenet")


def test_wildcard_match():
    names = [e.name for e in plugins.registry("model").match("lenet*")]
    assert "lenet5" in names and all(n.startswith("lenet") for n in names)


class FakeEntryPoint:
    def __init__(self, name, obj=None, error=None):
        self.name, self._obj, self._error = name, obj, error
        self.dist = types.SimpleNamespace(name=f"vistrain-{name}", version="1.0")

    def load(self):
        if self._error:
            raise self._error
        return self._obj


def _install(monkeypatch, eps, allowed=None):
    monkeypatch.setattr(plugins, "_entry_points", lambda: eps)
    if allowed is None:
        monkeypatch.delenv("VISTRAIN_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("VISTRAIN_PLUGINS", allowed)
    plugins.reset()


def test_entry_point_plugins_load_through_the_same_path(monkeypatch):
    module = types.ModuleType("fake_mod")
    module.register_models = hookimpl(lambda register: register("ep-net", "x:y"))
    _install(monkeypatch, [FakeEntryPoint("ep", module)])
    assert plugins.registry("model").entry("ep-net").plugin == "ep"
    info = {i.name: i for i in plugins.plugin_infos()}["ep"]
    assert info.status == "ok" and "vistrain-ep 1.0" in info.source and info.hooks == ["register_models"]


@pytest.mark.parametrize("allowed, loaded", [("none", set()), ("a", {"a"}), ("a,b", {"a", "b"}), (None, {"a", "b"})])
def test_env_var_restricts_third_party_plugins(monkeypatch, allowed, loaded):
    def mod(name):
        m = types.ModuleType(name)
        m.register_models = hookimpl(lambda register: register(f"{name}-net", "x:y"))
        return m

    _install(monkeypatch, [FakeEntryPoint("a", mod("a")), FakeEntryPoint("b", mod("b"))], allowed)
    names = set(plugins.registry("model").names())
    assert {n.split("-")[0] for n in names if n.endswith("-net")} == loaded
    assert "lenet5" in names  # built-ins always load
    statuses = {i.name: i.status for i in plugins.plugin_infos()}
    for name in {"a", "b"} - loaded:
        assert statuses[name] == "disabled"


def test_plugin_that_fails_to_import_is_reported_and_does_not_break_other_commands(monkeypatch, cli):
    _install(monkeypatch, [FakeEntryPoint("bad", error=ImportError("no module named 'missing_dep'"))])
    code, out, err = cli("datasets", "list")
    assert code == 0 and "mnist5k" in out
    assert "plugin 'bad' failed to load" in err
    code, out, _ = cli("plugins", "list")
    assert code == 0 and "bad" in out and "failed" in out and "missing_dep" in out
    code, _, err = cli("run", "--model", "bad-net", "--headless")
    assert code == 2 and "unknown model 'bad-net'" in err and "'bad' failed to load" in err


def test_plugin_whose_hook_raises_is_isolated(monkeypatch):
    module = types.ModuleType("raiser")

    def register_models(register):
        register("half-net", "x:y")
        raise RuntimeError("broken registration")

    module.register_models = hookimpl(register_models)
    _install(monkeypatch, [FakeEntryPoint("raiser", module)])
    names = plugins.registry("model").names()
    assert "lenet5" in names and "half-net" not in names
    info = {i.name: i for i in plugins.plugin_infos()}["raiser"]
    assert info.status == "broken" and "broken registration" in info.error


def test_lazy_factory_import_error_names_the_plugin():
    class Lazy:
        @hookimpl
        def register_models(self, register):
            register("lazy-net", "no_such_module_xyz:factory")

    plugins.register_plugin(Lazy(), "lazy")
    try:
        with pytest.raises(PluginError, match="plugin 'lazy' could not import"):
            plugins.registry("model").entry("lazy-net").load()
    finally:
        plugins.unregister_plugin("lazy")


def test_trust_comes_from_vistrains_own_list_not_from_the_name(capsys):
    """A third-party plugin called 'vistrain.x' is not built-in: its raising listener is skipped."""
    from vistrain.dispatch import EventDispatcher
    from vistrain.events import Log

    class Sneaky:
        @hookimpl
        def on_event(self, event):
            raise RuntimeError("sneaky")

    assert plugins.is_builtin("vistrain.models.builtin") and not plugins.is_builtin("vistrain.sneaky")
    plugins.register_plugin(Sneaky(), "vistrain.sneaky")
    try:
        emit = EventDispatcher(plugins.get_plugin_manager())
        emit(Log(level="info", message="one"))
    finally:
        plugins.unregister_plugin("vistrain.sneaky")
    assert "vistrain.sneaky" in emit.disabled
    assert "listener plugin 'vistrain.sneaky' raised RuntimeError" in capsys.readouterr().err


def test_misspelt_hook_and_wrong_arguments_mark_the_plugin_broken(monkeypatch):
    misspelt = types.ModuleType("misspelt")
    misspelt.register_model = hookimpl(lambda register: register("never-net", "x:y"))
    optional = types.ModuleType("optional")
    optional.register_future_thing = hookimpl(optionalhook=True)(lambda register: None)
    optional.register_models = hookimpl(lambda register: register("opt-net", "x:y"))
    wrong_args = types.ModuleType("wrong_args")
    wrong_args.register_models = hookimpl(lambda registr: None)
    _install(monkeypatch, [FakeEntryPoint("misspelt", misspelt), FakeEntryPoint("optional", optional),
                           FakeEntryPoint("wrong", wrong_args)])
    infos = {i.name: i for i in plugins.plugin_infos()}
    assert infos["misspelt"].status == "broken"
    assert "unknown hook 'register_model'. did you mean 'register_models'" in infos["misspelt"].error
    assert infos["wrong"].status == "broken" and "registr" in infos["wrong"].error
    assert infos["optional"].status == "ok"  # optionalhook=True: a hook of a newer vistrain is allowed
    names = plugins.registry("model").names()
    assert "opt-net" in names and "never-net" not in names


def test_doctor_finds_duplicates_bad_factories_and_unmarked_hooks(monkeypatch):
    from vistrain.plugin_doctor import diagnose

    good = types.ModuleType("good_mod")
    good.register_models = hookimpl(lambda register: register("good-net", "vistrain.models.lenet:LeNet5"))
    clash = types.ModuleType("clash_mod")
    clash.register_models = hookimpl(lambda register: register("lenet5", "no_such_module_xyz:f"))

    def register_datasets(register):  # not marked: vistrain would ignore it
        register("ignored", "x:y")

    register_datasets.__module__ = "clash_mod"
    clash.register_datasets = register_datasets
    _install(monkeypatch, [FakeEntryPoint("good", good), FakeEntryPoint("clash", clash)])
    checks = {c.name: c for c in diagnose()}
    assert set(checks) == {"good", "clash"}  # built-ins only with include_builtin
    assert checks["good"].problems == [] and checks["good"].registered == 1
    problems = " | ".join(checks["clash"].problems)
    assert "model 'lenet5' is registered by 'vistrain.models.builtin' and 'clash'" in problems
    assert "cannot import 'no_such_module_xyz:f'" in problems
    assert "'register_datasets' looks like hook 'register_datasets' but is not marked @hookimpl" in problems


def test_doctor_command_exit_codes(monkeypatch, cli):
    ok = types.ModuleType("ok_mod")
    ok.register_models = hookimpl(lambda register: register("ok-net", "vistrain.models.lenet:LeNet5"))
    _install(monkeypatch, [FakeEntryPoint("ok", ok)])
    code, out, _ = cli("plugins", "doctor")
    assert code == 0 and "no problems found in 1 plugin(s)" in out and "ok" in out
    _install(monkeypatch, [FakeEntryPoint("ok", ok), FakeEntryPoint("bad", error=ImportError("no module named 'dep'"))])
    code, out, err = cli("plugins", "doctor")
    assert code == 1 and "bad: import failed: ImportError: no module named 'dep'" in err


def test_plugins_list_shows_distribution_hooks_registered_names_and_status(monkeypatch, cli):
    module = types.ModuleType("listed")
    module.register_models = hookimpl(lambda register: register("listed-net", "x:y"))
    module.register_optimizers = hookimpl(lambda register: register("listed-opt", "x:y"))
    _install(monkeypatch, [FakeEntryPoint("listed", module), FakeEntryPoint("off", module)], allowed="listed")
    code, out, _ = cli("plugins", "list")
    row = next(line for line in out.splitlines() if line.startswith("listed "))
    assert "vistrain-listed 1.0" in row and "models, optimizers" in row
    assert "model: listed-net; optimizer: listed-opt" in row and row.rstrip().endswith("ok")
    assert "disabled: not listed in VISTRAIN_PLUGINS" in out
    assert "vistrain.models.builtin" not in out
    code, out, _ = cli("plugins", "list", "--all")
    assert "vistrain.models.builtin" in out and "lenet5" in out


def test_root_help_lists_plugin_commands_and_the_typer_root_options(cli):
    from typer.main import get_command

    from vistrain.cli import build_app
    from vistrain.cli.roothelp import ROOT_OPTIONS

    plugins.register_plugin(FakePlugin(), "fake")
    try:
        code, out, _ = cli("--help")
        root = get_command(build_app())
    finally:
        plugins.unregister_plugin("fake")
    assert code == 0 and "hello" in out and "Say hello. [plugin fake]" in out and "run " in out
    typer_flags = {opt for p in root.params for opt in p.opts + p.secondary_opts}
    typer_flags |= set(root.get_help_option_names(root.make_context("vistrain", ["run"], resilient_parsing=True)))
    assert {flag for flags, _ in ROOT_OPTIONS for flag in flags.split(", ")} == typer_flags


def test_commands_are_imported_only_when_invoked():
    import subprocess

    code = ("import sys; from vistrain.cli import main; main(['--help']); a = 'typer' in sys.modules;"
            "main(['plugins', 'list']); print(a, 'vistrain.cli.plugins' in sys.modules, 'vistrain.cli.run' in sys.modules,"
            "'vistrain.cli.models' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-4:] == ["False", "True", "False", "False"]


def test_a_raising_third_party_op_leaves_randaugments_pool_not_the_run(capsys):
    import numpy as np

    from vistrain.augment.randaugment import RandAugment
    from vistrain.errors import ConfigError

    def unbuildable(m=None):
        raise ValueError("needs a GPU")

    def raising(m=None):
        def op(img, rng):
            raise RuntimeError("bad pixels")
        return op

    class Ops:
        @hookimpl
        def register_augmentations(self, register):
            register("unbuildable", unbuildable, randaugment=True)
            register("raising", raising, randaugment=True)

    plugins.register_plugin(Ops(), "flaky-ops")
    try:
        rand = RandAugment(n=3, m=9)
        rng = np.random.default_rng(0)
        img = np.full((12, 12, 1), 100, np.uint8)
        picked = set()
        for _ in range(40):
            out, names = rand.traced(img, rng)
            assert out.shape == img.shape
            picked.update(names)
        with pytest.raises(ConfigError, match="'unbuildable' cannot join"):
            RandAugment(ops=["unbuildable", "rotate"])  # named by the user: fails loudly
    finally:
        plugins.unregister_plugin("flaky-ops")
    err = capsys.readouterr().err
    assert "plugin 'flaky-ops'" in err and "needs a GPU" in err and "raised RuntimeError: bad pixels" in err
    assert err.count("raised RuntimeError") == 1  # reported once, then skipped
    assert "raising" not in picked and "unbuildable" not in picked and {"rotate", "identity"} & picked
