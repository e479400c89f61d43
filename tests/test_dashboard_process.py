"""The dashboard in its own process: the event pipe, the control channel, and a whole run under it."""

from __future__ import annotations

import json
import os
import time

import pytest

from vistrain.config import resolve_config
from vistrain.engine.control import TrainControl
from vistrain.engine.control_channel import RemoteControl, serve_control
from vistrain.events import BatchEnd, ConsistencyStats, Log, RunFinished, from_dict
from vistrain.listeners.pipe import EventPipeWriter


def _until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_remote_keys_reach_the_training_control():
    r, w = os.pipe()
    control = TrainControl()
    thread = serve_control(r, control)
    remote = RemoteControl(w)
    assert remote.toggle_pause() is True and _until(lambda: control.paused)
    assert remote.toggle_pause() is False and _until(lambda: not control.paused)
    remote.request_save()
    assert _until(control.take_save_request)
    assert not control.stop_requested
    remote.request_stop()
    assert _until(lambda: control.stop_requested) and remote.stop_requested
    remote.close()
    thread.join(5)
    assert not thread.is_alive()


def test_a_front_end_that_vanishes_mid_run_stops_training_but_a_goodbye_does_not():
    for bye, stopped in ((False, True), (True, False)):
        r, w = os.pipe()
        control = TrainControl()
        thread = serve_control(r, control)
        RemoteControl(w).close(bye=bye)
        thread.join(5)
        assert control.stop_requested is stopped


def test_event_pipe_carries_the_events_in_order():
    r, w = os.pipe()
    writer = EventPipeWriter(w)
    events = [Log(level="info", message=f"line {i}") for i in range(200)]
    events.append(RunFinished(run_name="x", duration_s=1.0, metrics={"test_top1": 0.9}, stopped_early=False))
    for event in events:
        writer.on_event(event)
    writer.close()
    with os.fdopen(r, "rb") as stream:
        got = [from_dict(json.loads(line)) for line in stream]
    assert [e.to_dict() for e in got] == [e.to_dict() for e in events]


def test_batch_events_go_down_the_pipe_in_bundles_and_in_order():
    import select

    r, w = os.pipe()
    writer = EventPipeWriter(w, batch_interval_s=3600.0)
    batches = [BatchEnd(stage="s", epoch=1, step=i, steps_per_epoch=9, global_step=i, loss=1.0 / i, lr=0.1,
                        samples_per_s=1.0, data_wait_s=0.0, step_time_s=0.1) for i in range(1, 9)]
    for event in batches[:5]:
        writer.on_event(event)
    time.sleep(0.2)
    assert select.select([r], [], [], 0)[0] == []  # held back: the reader was not woken
    writer.on_event(Log(level="info", message="epoch over"))  # any other event sends them, before itself
    for event in batches[5:]:
        writer.on_event(event)
    writer.close()  # and close sends the rest
    with os.fdopen(r, "rb") as stream:
        got = [from_dict(json.loads(line)).to_dict() for line in stream]
    expected = batches[:5] + [Log(level="info", message="epoch over")] + batches[5:]
    assert [{k: v for k, v in e.items() if k != "time"} for e in got] == \
        [{k: v for k, v in e.to_dict().items() if k != "time"} for e in expected]

    r, w = os.pipe()
    writer = EventPipeWriter(w, batch_interval_s=0.0)  # the interval passed: each batch is sent at once
    writer.on_event(batches[0])
    assert select.select([r], [], [], 5)[0] == [r]
    writer.close()
    os.close(r)

    r, w = os.pipe()
    writer = EventPipeWriter(w, batch_interval_s=0.3)
    writer.on_event(batches[0])  # then nothing more, as when training is paused
    assert select.select([r], [], [], 0.1)[0] == []
    assert select.select([r], [], [], 5)[0] == [r]  # the writer sends it by itself
    assert from_dict(json.loads(os.read(r, 65536))).global_step == 1
    writer.close()
    os.close(r)


def test_a_consistency_stages_statistics_wait_in_the_bundle_with_the_batches():
    import select

    r, w = os.pipe()
    writer = EventPipeWriter(w, batch_interval_s=3600.0)
    writer.on_event(BatchEnd(stage="s", epoch=1, step=10, steps_per_epoch=90, global_step=10, loss=1.0, lr=0.1,
                             samples_per_s=1.0, data_wait_s=0.0, step_time_s=0.1))
    writer.on_event(ConsistencyStats(stage="s", epoch=1, global_step=10, images=640, mask_rate=0.5,
                                     unlabelled_loss=0.3, threshold=0.95))
    time.sleep(0.2)
    assert select.select([r], [], [], 0)[0] == []  # neither woke the reader
    writer.close()
    with os.fdopen(r, "rb") as stream:
        assert [json.loads(line)["kind"] for line in stream] == ["batch_end", "consistency_stats"]


def test_a_run_under_the_separate_process_dashboard(tmp_path, monkeypatch):
    import subprocess

    from vistrain.tui.launch import run_with_dashboard

    started, real_popen = [], subprocess.Popen

    def popen(cmd, *args, **kwargs):
        started.append(list(cmd))
        return real_popen(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)
    cfg = resolve_config(None, {"data.name": "digits", "model.name": "mlp", "train.epochs": 2, "output.dir": str(tmp_path),
                                "output.name": "d", "augment.spec": "none", "output.system_interval_s": 0.2,
                                "output.dashboard_refresh_s": 0.5, "output.dashboard_nice": 7})
    result = run_with_dashboard(cfg, headless_size="100x30")
    cmd = next(c for c in started if "vistrain.tui.process" in c)
    assert cmd[cmd.index("--refresh-s") + 1] == "0.5"
    assert cmd[cmd.index("--nice") + 1] == "7"
    assert result.run_dir == tmp_path / "d" and not result.stopped_early
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "d" / "events.jsonl").read_text().splitlines()]
    kinds = [k for k in kinds if k != "system_sample"]  # the sampler thread may land one after the end
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert (tmp_path / "d" / "checkpoints" / "best.pt").exists()


def test_vistrain_run_starts_the_dashboard_before_it_imports_torch(tmp_path):
    # The dashboard process's start-up (Python, Textual, the first screen) then overlaps this process's
    # torch import instead of the training; the real command, with stdout taken for a terminal.
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "sys.stdout.isatty = lambda: True\n"
        "import vistrain.tui\n"
        "def fake(cfg, **kw):\n"
        "    print('TORCH_LOADED', 'torch' in sys.modules)\n"
        "    return None\n"
        "vistrain.tui.run_with_dashboard = fake\n"
        "from vistrain.cli import main\n"
        f"sys.exit(main(['run', '--epochs', '1', '--out', {str(tmp_path)!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "TORCH_LOADED False" in out.stdout, out.stdout + out.stderr
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no os.nice on this platform")
@pytest.mark.parametrize("niceness", [0, 4])
def test_the_dashboard_process_lowers_its_own_priority(niceness):
    # In a child, so this test process keeps its priority: the niceness goes up by exactly what was asked
    # (0: left alone), and the function says what it became.
    import subprocess
    import sys

    probe = ("import os\nfrom vistrain.tui.process import lower_priority\nbefore = os.nice(0)\n"
             f"got = lower_priority({niceness})\nprint(before, os.nice(0), got)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    before, after, got = int(out[0]), int(out[1]), out[2]
    assert after == min(before + niceness, 19)
    assert got == ("None" if niceness == 0 else str(after))
