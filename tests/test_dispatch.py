"""Per-run event dispatch: each run its own listeners, with pluggy's ordering and wrapper semantics."""

from __future__ import annotations

from vistrain import plugins
from vistrain.dispatch import EventDispatcher
from vistrain.events import Log
from vistrain.hookspecs import hookimpl


class Calls:
    def __init__(self, log, tag):
        self.log, self.tag = log, tag

    @hookimpl
    def on_event(self, event):
        self.log.append(self.tag)


def test_each_run_has_its_own_listeners():
    seen_a, seen_b = [], []
    a = EventDispatcher(plugins.get_plugin_manager(), listeners=[("vistrain.run.listener0", Calls(seen_a, "a"))])
    b = EventDispatcher(plugins.get_plugin_manager(), listeners=[("vistrain.run.listener0", Calls(seen_b, "b"))])
    a(Log(level="info", message="one"))
    b(Log(level="info", message="two"))
    b(Log(level="info", message="three"))
    assert seen_a == ["a"] and seen_b == ["b", "b"]
    # nothing was registered into the process-wide manager
    assert plugins.get_plugin_manager().get_plugin("vistrain.run.listener0") is None


def test_wrapper_listeners_wrap_the_others_and_tryfirst_orders():
    log = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def on_event(self, event):
            log.append("before")
            result = yield
            log.append("after")
            return result

    class OldWrapper:
        @hookimpl(hookwrapper=True)
        def on_event(self, event):
            log.append("old-before")
            yield
            log.append("old-after")

    class First:
        @hookimpl(tryfirst=True)
        def on_event(self, event):
            log.append("first")

    plugins.register_plugin(Wrapper(), "wrap")
    plugins.register_plugin(OldWrapper(), "oldwrap")
    plugins.register_plugin(First(), "first")
    try:
        emit = EventDispatcher(plugins.get_plugin_manager(), listeners=[("own", Calls(log, "own"))])
        emit(Log(level="info", message="x"))
    finally:
        for name in ("wrap", "oldwrap", "first"):
            plugins.unregister_plugin(name)
    assert log[0] in ("before", "old-before") and log[-1] in ("after", "old-after")
    inner = [x for x in log if x in ("first", "own")]
    assert inner == ["first", "own"]
    assert sorted(log) == sorted(["before", "old-before", "first", "own", "old-after", "after"])


def test_a_runs_own_listener_error_propagates():
    class Bad:
        @hookimpl
        def on_event(self, event):
            raise RuntimeError("writer broke")

    emit = EventDispatcher(None, listeners=[("vistrain.run.jsonl", Bad())])
    try:
        emit(Log(level="info", message="x"))
    except RuntimeError as exc:
        assert "writer broke" in str(exc)
    else:
        raise AssertionError("the run's own writer error was swallowed")
