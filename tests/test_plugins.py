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
    assert info.status == "failed" and "broken registration" in info.error


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
