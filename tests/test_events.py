"""Events: JSON round trip, unknown kinds, the console reporter and the system sampler."""

from __future__ import annotations

import io
import json
import time

import pytest

from vistrain import events as ev
from vistrain.listeners.console import ConsoleReporter

SAMPLES = [
    ev.RunStarted(run_name="r", run_dir="/tmp/r", strategy="supervised", model="lenet5", dataset="mnist5k", device="cpu"),
    ev.RunFinished(run_name="r", duration_s=1.5, metrics={"best_val_top1": 0.99}),
    ev.RunFailed(run_name="r", error="NonFiniteLossError", message="loss became nan"),
    ev.StageStarted(stage="supervised", epochs=3, steps_per_epoch=10, model="lenet5", num_params=61706),
    ev.BatchEnd(stage="s", epoch=1, step=10, steps_per_epoch=20, global_step=10, loss=0.5, lr=0.01,
                samples_per_s=1000.0, data_wait_s=0.1, step_time_s=0.5, epochs=3),
    ev.EpochEnd(stage="s", epoch=1, epochs=3, train_loss=0.4, train_top1=0.9, lr=0.01, duration_s=2.0, samples=640),
    ev.EvalEnd(stage="s", epoch=1, split="val", loss=0.3, top1=0.95, top5=1.0, num_samples=100),
    ev.CheckpointSaved(path="/tmp/r/checkpoints/best.pt", epoch=1, global_step=10, is_best=True, metric=0.95),
    ev.SystemSample(cpu_percent=50.0, ram_used_gb=4.0, ram_total_gb=24.0, process_rss_gb=1.0,
                    gpus=[{"index": 0, "util_percent": 90.0}]),
    ev.Log(level="warning", message="careful"),
    ev.ImagesSkipped(stage="s", epoch=1, split="train", paths=["/data/a/1.jpg", "/data/b/7.jpg"], total=2),
    ev.PseudoLabelStats(round=1, counts_before=[5, 3], counts_after=[5, 5], confidence_hist=[0] * 19 + [8],
                        threshold=0.3, acceptance_rate=0.8, mean_confidence=0.9, flip_rate=None, accuracy=0.97),
    ev.ConsistencyStats(stage="fixmatch", epoch=1, global_step=10, images=640, mask_rate=0.5, unlabelled_loss=0.3,
                        threshold=0.95, accuracy=0.98, accuracy_all=0.9, class_thresholds=[0.95, 0.95],
                        class_accepted=[200, 120], class_names=["a", "b"]),
    ev.AugmentTrial(trial=1, trials=4, policy={"n": 2, "m": 9}, score=0.97, leaderboard=[{"n": 2, "m": 9, "score": 0.97}]),
    ev.TuneTrial(study="s", number=3, state="pruned", params={"optim.lr": 0.01}, trials=20, finished=4,
                 run_dir="/tmp/s/trial-0003", outcome="pruned", steps=[0.5, 0.6], best_number=1, best_value=0.9),
]


def test_every_event_type_has_a_sample():
    assert {s.kind for s in SAMPLES} == set(ev.EVENT_TYPES)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.kind)
def test_json_round_trip(event):
    data = json.loads(json.dumps(event.to_dict()))
    assert data["schema"] == ev.SCHEMA_VERSION and data["kind"] == event.kind
    assert ev.from_dict(data) == event


def test_unknown_kinds_are_kept():
    back = ev.from_dict({"schema": 9, "kind": "from_the_future", "time": 1.0, "x": 1})
    assert isinstance(back, ev.Unknown) and back.original_kind == "from_the_future" and back.data["x"] == 1


def test_data_wait_fraction():
    assert SAMPLES[4].data_wait_fraction == pytest.approx(0.2)


def test_plain_console_lines():
    out = io.StringIO()
    rep = ConsoleReporter(stream=out, plain=True, every=1)
    for e in SAMPLES:
        rep.on_event(e)
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert "epoch 1/3 step 10/20 loss 0.5000" in text
    assert "train loss 0.4000 acc 90.00% | val loss 0.3000 top-1 95.00%" in text
    assert "warning: careful" in text and "pseudo labels round 1" in text
    assert "61,706 params" in text


def test_a_consistency_stage_prints_one_pseudo_label_line_per_epoch():
    def stats(epoch, step, mask, acc, acc_all, thresholds):
        return ev.ConsistencyStats(stage="flexmatch", epoch=epoch, global_step=step, images=1000, mask_rate=mask,
                                   unlabelled_loss=0.2, threshold=0.95, accuracy=acc, accuracy_all=acc_all,
                                   class_thresholds=thresholds)

    def epoch_end(epoch):
        return [ev.EpochEnd(stage="flexmatch", epoch=epoch, epochs=2, train_loss=0.4, train_top1=0.9, lr=0.01,
                            duration_s=2.0, samples=640),
                ev.EvalEnd(stage="flexmatch", epoch=epoch, split="val", loss=0.3, top1=0.95, top5=1.0, num_samples=100)]

    out = io.StringIO()
    rep = ConsoleReporter(stream=out, plain=True, every=1000)
    events = [stats(1, 10 * i, 0.2 + 0.1 * i, 0.9, 0.6, [0.5, 0.7]) for i in range(1, 5)] + epoch_end(1)
    events += [stats(2, 50, 0.8, 1.0, 0.75, [0.95, 0.95]), stats(2, 60, 0.6, None, None, [0.95, 0.95])] + epoch_end(2)
    for e in events:
        rep.on_event(e)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # nothing for the intervals themselves: an epoch line, then its pseudo labels
    assert lines[0].startswith("flexmatch epoch 1/2 train loss")
    # image-weighted: the mask of the four intervals together, accuracy over the labels they accepted
    assert lines[1] == "flexmatch epoch 1 pseudo labels: mask 45.0%, accuracy 90.0% (all 60.0%), thresholds 0.50-0.70"
    # the interval without true labels counts in the mask only
    assert lines[3] == "flexmatch epoch 2 pseudo labels: mask 70.0%, accuracy 100.0% (all 75.0%), threshold 0.95"


def test_the_terminal_progress_bar_shows_the_latest_mask_rate():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    rep = ConsoleReporter(stream=out)
    stats = [e for e in SAMPLES if isinstance(e, ev.ConsistencyStats)][0]
    rep.on_event(stats)
    rep.on_event(ev.BatchEnd(stage="fixmatch", epoch=1, epochs=1, step=20, steps_per_epoch=20, global_step=20, loss=0.5,
                             lr=0.01, samples_per_s=1000.0, data_wait_s=0.0, step_time_s=0.1))
    rep.close()
    assert "mask 50%" in out.getvalue()


def test_rich_console_in_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    rep = ConsoleReporter(stream=out)
    assert rep.plain is False
    for e in SAMPLES:
        rep.on_event(e)
    rep.close()
    assert "top-1 95.00%" in out.getvalue()


def test_the_terminal_progress_bar_is_redrawn_from_the_events_at_most_twice_a_second(monkeypatch):
    # no refresh thread in the training process: rich draws only when the reporter asks it to
    import vistrain.listeners.console as console
    from vistrain.events import BatchEnd

    class Tty(io.StringIO):
        def isatty(self):
            return True

    clock = [100.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: clock[0])
    out = Tty()
    rep = ConsoleReporter(stream=out)
    frames = []

    def batch(step):
        clock[0] += 1 / 128  # 128 steps a second (exact in binary)
        size = len(out.getvalue())
        rep.on_event(BatchEnd(stage="train", epoch=1, epochs=1, step=step, steps_per_epoch=200, global_step=step,
                              loss=0.5, lr=1e-3, samples_per_s=1000.0, data_wait_s=0.0, step_time_s=1 / 128))
        if len(out.getvalue()) > size:
            frames.append(step)

    for step in range(1, 201):
        batch(step)
    assert rep._progress is not None and not rep._progress.live.auto_refresh
    assert frames == [1, 65, 129, 193, 200]  # at the start, every 0.5 s (64 steps), and the epoch's last step
    assert "200/200" in out.getvalue()
    rep.close()


def test_system_sampler_reports_cpu_for_real():
    from vistrain.engine.system import SystemSampler

    got = []
    sampler = SystemSampler(got.append, interval=0.05)
    sampler.start()
    time.sleep(0.4)
    sampler.stop()
    assert got and all(0 <= s.cpu_percent <= 100 * 64 for s in got)
    assert got[0].ram_total_gb > 0 and got[0].process_rss_gb > 0


def test_nvml_branch_with_a_fake_library():
    from vistrain.engine.system import NvmlReader, sample_system

    class Fake:
        NVML_TEMPERATURE_GPU = 0

        def nvmlInit(self):
            pass

        def nvmlDeviceGetCount(self):
            return 2

        def nvmlDeviceGetHandleByIndex(self, i):
            return i

        def nvmlDeviceGetUtilizationRates(self, h):
            return type("U", (), {"gpu": 40 + h})()

        def nvmlDeviceGetMemoryInfo(self, h):
            return type("M", (), {"used": 2e9, "total": 8e9})()

        def nvmlDeviceGetName(self, h):
            return b"Fake GPU"

        def nvmlDeviceGetTemperature(self, h, kind):
            return 60

        def nvmlDeviceGetPowerUsage(self, h):
            return 150_000

    sample = sample_system(nvml=NvmlReader(Fake()))
    assert [g["util_percent"] for g in sample.gpus] == [40.0, 41.0]
    assert sample.gpus[0] | {} == {"index": 0, "name": "Fake GPU", "util_percent": 40.0, "mem_used_gb": 2.0,
                                   "mem_total_gb": 8.0, "temperature_c": 60.0, "power_w": 150.0}


def test_run_finished_is_the_last_event_even_with_a_fast_system_sampler(tmp_path):
    from vistrain.config import resolve_config
    from vistrain.hookspecs import hookimpl
    from vistrain.runner import execute

    seen = []

    class Recorder:
        @hookimpl
        def on_event(self, event):
            seen.append(event.kind)

    class SlowOnFinish:  # gives a still-running sampler every chance to send one more sample
        @hookimpl
        def on_event(self, event):
            if event.kind == "run_finished":
                time.sleep(0.2)

    cfg = resolve_config(None, {"data.name": "digits", "model.name": "perceptron", "train.epochs": 1,
                                "output.dir": str(tmp_path), "output.name": "r", "output.system_interval_s": 0.01,
                                "augment.spec": "none"})
    execute(cfg, listeners=[Recorder(), SlowOnFinish()])
    assert "system_sample" in seen and seen[-1] == "run_finished", seen[-4:]


def test_under_ddp_every_rank_shows_even_in_a_run_shorter_than_the_sampling_interval():
    """Other ranks post at once; rank 0 emits a last sample at stop with every rank's latest. A 100 s interval
    and an immediate stop: rank 1 posted, rank 0 emitted exactly one sample holding both ranks."""
    import time

    from vistrain.engine.distributed import DistInfo, SampleRelay
    from vistrain.engine.system import SystemSampler

    class Store:
        def __init__(self):
            self.data = {}

        def set(self, key, value):
            self.data[key] = value.encode() if isinstance(value, str) else value

        def check(self, keys):
            return all(k in self.data for k in keys)

        def get(self, key):
            return self.data[key]

    store = Store()
    rank1 = SystemSampler(lambda e: None, interval=100.0, relay=SampleRelay(DistInfo(rank=1, world_size=2), store), rank=1)
    rank1.start()
    deadline = time.time() + 10
    while not store.data and time.time() < deadline:
        time.sleep(0.01)
    rank1.stop()
    assert store.data, "rank 1 did not post at once"
    got = []
    rank0 = SystemSampler(got.append, interval=100.0, relay=SampleRelay(DistInfo(rank=0, world_size=2), store), rank=0)
    rank0.start()
    rank0.stop()
    assert len(got) == 1 and sorted(r["rank"] for r in got[0].ranks) == [0, 1]
