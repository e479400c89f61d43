"""Dashboard panels fed a fixed recorded event stream: Pilot checks and snapshots at 80×24 and 160×48."""

from __future__ import annotations

import re

import pytest

from vistrain.events import (
    AugmentTrial, BatchEnd, CheckpointSaved, ConsistencyStats, EpochEnd, EvalEnd, Log, PseudoLabelStats, RunFinished,
    RunStarted, StageStarted, SystemSample,
)
from vistrain.tui.app import DashboardApp
from vistrain.tui.widgets.consistency import ClassBars, ConsistencyNumbers, ConsistencyPanel
from vistrain.tui.widgets.lineplot import LinePlot
from vistrain.tui.widgets.curves import CurvesPanel
from vistrain.tui.widgets.log import EventLog
from vistrain.tui.widgets.progress import ProgressPanel, format_eta
from vistrain.tui.widgets.pseudo import PseudoLabelPanel
from vistrain.tui.widgets.system import SystemPanel

T0 = 1_700_000_000.0
CLASSES = [f"c{i}" for i in range(10)]


def recorded_events(epochs: int = 3, finished: bool = False) -> list:
    """A noisy-student-like run: stage 1 of 2, three epochs, one pseudo-label round; fixed times."""
    steps = 20
    t = T0
    events = [
        RunStarted(run_name="lenet5-digits-demo", run_dir="/runs/lenet5-digits-demo", strategy="noisy-student",
                   model="lenet5", dataset="digits", device="cpu", num_classes=10, num_train=1438, num_val=359,
                   time=t),
        StageStarted(stage="teacher", index=1, total=2, description="noisy-student 1/2: training teacher lenet5",
                     epochs=epochs, steps_per_epoch=steps, model="lenet5", num_params=61706, time=t + 1),
        Log(level="warning", message="skipped 2 unreadable image(s): a.png, b.png", time=t + 1.5),
    ]
    gstep = 0
    for epoch in range(1, epochs + 1):
        for step in range(5, steps + 1, 5):
            gstep += 5
            t += 0.5
            events.append(BatchEnd(stage="teacher", epoch=epoch, epochs=epochs, step=step, steps_per_epoch=steps,
                                   global_step=gstep, loss=2.0 / (gstep ** 0.5), lr=1e-3, samples_per_s=640.0,
                                   data_wait_s=0.05, step_time_s=0.5, time=t))
        events.append(EpochEnd(stage="teacher", epoch=epoch, epochs=epochs, train_loss=1.5 / epoch,
                               train_top1=0.5 + 0.12 * epoch, lr=1e-3, duration_s=2.0, samples=1280, time=t))
        events.append(EvalEnd(stage="teacher", epoch=epoch, split="val", loss=1.2 / epoch, top1=0.6 + 0.1 * epoch,
                              top5=0.99, num_samples=359, time=t + 0.1))
        events.append(CheckpointSaved(path="/runs/x/checkpoints/last.pt", epoch=epoch, global_step=gstep,
                                      time=t + 0.2))
    events += [
        SystemSample(cpu_percent=63.0, ram_used_gb=5.2, ram_total_gb=16.0, process_rss_gb=1.25, time=t + 0.3),
        PseudoLabelStats(round=1, counts_before=[120, 80, 95, 60, 130, 70, 88, 101, 45, 99],
                         counts_after=[100, 80, 95, 60, 100, 70, 88, 100, 45, 99],
                         confidence_hist=[0, 1, 1, 2, 3, 4, 5, 6, 8, 9, 11, 13, 15, 20, 26, 35, 48, 70, 110, 190],
                         threshold=0.8, acceptance_rate=0.612, mean_confidence=0.874, flip_rate=0.031,
                         accuracy=0.957, class_names=CLASSES, time=t + 0.4),
        Log(level="info", message="pseudo labels round 1: 612 of 1000 accepted", time=t + 0.5),
    ]
    if finished:
        events.append(RunFinished(run_name="lenet5-digits-demo", duration_s=t + 1 - T0,
                                  metrics={"best_val_top1": 0.9}, time=t + 1))
    return events


def consistency_events(intervals: int = 6, every: int = 20, known: bool = True, t0: float = T0 + 100) -> list:
    """A FlexMatch-like stage's statistics, one per *every* steps: the mask rate and the thresholds rise
    through warm-up; accuracies only when the unlabelled images' true labels are *known*."""
    events = []
    for i in range(1, intervals + 1):
        warm = i / intervals
        events.append(ConsistencyStats(
            stage="flexmatch", epoch=1 + (i - 1) // 3, global_step=every * i, images=448 * every,
            mask_rate=0.3 + 0.1 * i, unlabelled_loss=0.5 / i, threshold=0.95,
            accuracy=0.9 + 0.01 * i if known else None, accuracy_all=0.7 + 0.02 * i if known else None,
            class_thresholds=[round(0.95 * (0.5 + 0.5 * warm) * (0.9 + 0.01 * c), 4) for c in range(10)],
            class_accepted=[10 * (c + 1) + i for c in range(10)], class_names=CLASSES, time=t0 + i))
    return events


def replay_app(events=None) -> DashboardApp:
    """A dashboard that applies *events* on mount, with no clock-driven source."""

    class Replay(DashboardApp):
        def on_ready(self) -> None:
            self.feed(recorded_events() if events is None else events)
            self.query_one(CurvesPanel).flush()

    return Replay()


@pytest.mark.asyncio
async def test_panels_update_from_recorded_events():
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        progress = app.query_one(ProgressPanel)
        assert (progress.epoch, progress.epochs, progress.step, progress.global_step) == (3, 3, 20, 60)
        assert progress.samples_per_s == 640.0 and progress.data_wait == pytest.approx(0.1)
        assert "noisy-student 1/2: training teacher lenet5" in app.header.stage
        assert app.header.state == "running"
        curves = app.query_one(CurvesPanel)
        assert curves.series["val_acc"] == ([1, 2, 3], [pytest.approx(70.0), pytest.approx(80.0), pytest.approx(90.0)])
        assert len(curves.series["step_loss"][0]) == 12
        log = app.query_one(EventLog).lines_written
        assert any("warning: skipped 2 unreadable" in line and line.startswith("+1.5s ") for line in log)
        pseudo = app.query_one(PseudoLabelPanel)
        assert pseudo.display and pseudo.stats.round == 1
        text = pseudo.render().plain
        assert "accepted 61.2% · mean conf 0.87" in text and "flips 3.1%" in text and "label acc 95.7%" in text
        assert "▲ 0.80" in text
        assert "CPU" in app.query_one(SystemPanel).render().plain


@pytest.mark.asyncio
async def test_pseudo_panel_hidden_without_rounds_and_augment_board_shows_trials():
    events = [e for e in recorded_events() if not isinstance(e, PseudoLabelStats)]
    events.append(AugmentTrial(trial=2, trials=8, policy={"ops": "flip"}, score=0.91, time=T0 + 30,
                               leaderboard=[{"policy": {"ops": "flip"}, "score": 0.91},
                                            {"policy": {"ops": "rotate:10"}, "score": 0.88}]))
    app = replay_app(events)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert not app.query_one(PseudoLabelPanel).display
        board = app.query_one("#augment")
        assert board.display and board.row_count == 2
        assert "trial 2/8" in board.border_title
        app.feed([StageStarted(stage="final", index=2, total=2, epochs=3, steps_per_epoch=20, time=T0 + 31)])
        assert board.display  # search not finished yet: keep showing
        app.feed([AugmentTrial(trial=8, trials=8, policy={}, score=0.9, time=T0 + 40),
                  StageStarted(stage="final", index=2, total=2, epochs=3, steps_per_epoch=20, time=T0 + 41)])
        assert not board.display


def consistency_run() -> list:
    """The recorded run with a consistency stage's statistics in place of the pseudo-label round."""
    return [e for e in recorded_events() if not isinstance(e, PseudoLabelStats)] + consistency_events()


@pytest.mark.asyncio
async def test_consistency_panel_shows_rates_plot_and_class_bars():
    app = replay_app(consistency_run())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        panel = app.query_one(ConsistencyPanel)
        assert panel.display and not app.query_one(PseudoLabelPanel).display
        assert app.query_one("#bottom").has_class("-side")  # the pseudo-label panel's room on a tall screen
        assert panel.border_title == "pseudo labels · step 120"
        numbers = app.query_one(ConsistencyNumbers).render().plain
        assert numbers.splitlines() == ["mask 90.0% · acc 96.0% (all 82.0%)",
                                        "τ 0.95 · 8,960 unlabelled · loss 0.083 · epoch 2"]
        plot = app.query_one("#consistency LinePlot", LinePlot)
        assert [label for label, *_ in plot.series] == ["mask", "acc", "all"]
        assert plot.series[0][1] == [20, 40, 60, 80, 100, 120]
        assert plot.series[0][2] == pytest.approx([40, 50, 60, 70, 80, 90])
        drawn = plot.render().plain
        assert "━mask 90" in drawn and any(0x2800 < ord(c) <= 0x28FF for c in drawn)  # braille dots were drawn
        bars = app.query_one(ClassBars).render().plain.splitlines()
        assert len(bars) == 11 and "threshold" in bars[0] and "accepted" in bars[0]  # a row per class
        assert re.fullmatch(r"c0 [█▏▎▍▌▋▊▉ ]+ 0\.8[56] [█▏▎▍▌▋▊▉ ]+ +16", bars[1])  # 0.855
        assert re.fullmatch(r"c9 [█▏▎▍▌▋▊▉ ]+ 0\.94 █+ 106", bars[10])  # the most accepted: a full bar


@pytest.mark.asyncio
async def test_consistency_panel_at_80x24_and_without_true_labels():
    app = replay_app([e for e in recorded_events() if not isinstance(e, PseudoLabelStats)]
                     + consistency_events(known=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = app.query_one(ConsistencyPanel)
        assert panel.display
        assert app.query_one(ConsistencyNumbers).render().plain == "mask 90.0%"  # no accuracy to show
        plot = app.query_one("#consistency LinePlot", LinePlot)
        assert [label for label, *_ in plot.series] == ["mask"]
        bars = app.query_one(ClassBars).render().plain.splitlines()  # no room for a row per class: sparklines
        assert bars[0].startswith("τ") and bars[1].startswith("kept") and bars[1].endswith(" 610")


@pytest.mark.asyncio
async def test_consistency_stats_wait_for_the_frame_and_a_resume_replaces_their_points():
    from vistrain.tui.messages import RunEvent

    app = DashboardApp(refresh_s=3600.0)  # frames driven by hand below
    posted = []
    async with app.run_test(size=(120, 40)) as pilot:
        real_post = app.post_message
        app.post_message = lambda message: (isinstance(message, RunEvent) and posted.append(message)) or real_post(message)
        panel = app.query_one(ConsistencyPanel)
        for event in consistency_events(intervals=4):
            app.receive(event)
        await pilot.pause()
        assert posted == [] and not panel.display  # no message each: they come every few steps
        app._frame()
        assert panel.display and panel.border_title == "pseudo labels · step 80"
        assert app.query_one("#bottom").has_class("-side")
        app.receive(consistency_events(intervals=2)[1])  # resumed from the checkpoint of step 40
        app._frame()
        assert panel.series["mask"] == ([20, 40], [pytest.approx(40.0), pytest.approx(50.0)])
        assert panel.border_title == "pseudo labels · step 40"


@pytest.mark.asyncio
async def test_finished_stream_marks_run_over_and_disables_training_keys():
    app = replay_app(recorded_events(finished=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.run_over and app.header.state == "finished"
        assert app.check_action("toggle_pause", ()) is None
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.press("q")  # nothing left to stop: closes without asking
    assert app.return_code == 0


def test_eta_and_progress_math():
    assert format_eta(None) == "--:--" and format_eta(75) == "1:15" and format_eta(3723) == "1:02:03"
    panel = ProgressPanel()
    panel.apply(StageStarted(stage="s", epochs=2, steps_per_epoch=10, time=0))
    panel.apply(BatchEnd(stage="s", epoch=1, epochs=2, step=5, steps_per_epoch=10, global_step=5, loss=1.0,
                         lr=0.1, samples_per_s=10, data_wait_s=0.0, step_time_s=1.0, time=0))
    assert panel.eta_s == pytest.approx(15 * 0.2)


def test_snapshot_80x24(snap_compare):
    assert snap_compare(replay_app(), terminal_size=(80, 24))


def test_snapshot_160x48(snap_compare):
    assert snap_compare(replay_app(), terminal_size=(160, 48))


def test_snapshot_of_a_consistency_stage_120x40(snap_compare):
    assert snap_compare(replay_app(consistency_run()), terminal_size=(120, 40))


@pytest.mark.asyncio
@pytest.mark.parametrize("refresh_s, frames", [(0.05, range(4, 40)), (30.0, range(0, 1))])
async def test_the_busy_panels_redraw_every_refresh_s(refresh_s, frames):
    import asyncio

    app = DashboardApp(refresh_s=refresh_s)
    count = [0]
    real = app._frame

    def counted():
        count[0] += 1
        real()

    app._frame = counted
    async with app.run_test(size=(80, 24)):
        await asyncio.sleep(0.5)
    assert count[0] in frames


@pytest.mark.asyncio
async def test_the_curves_show_the_first_epoch_at_the_next_frame_then_every_other_frame():
    from vistrain.events import EpochEnd

    def epoch(n):
        return EpochEnd(stage="teacher", epoch=n, epochs=5, train_loss=0.5, train_top1=0.8, lr=1e-3, duration_s=1.0,
                        samples=100)

    app = DashboardApp(refresh_s=3600.0)  # frames driven by hand below
    async with app.run_test(size=(120, 40)) as pilot:
        curves = app.query_one(CurvesPanel)
        app.feed(recorded_events(epochs=1)[:2])  # run and stage started: no points yet
        app._frames = 0
        app.apply_event(epoch(1))
        app._frame()  # frame 1 (odd): drawn, since no epoch was shown yet
        assert curves.drawn_epochs == 1
        app.apply_event(epoch(2))
        app._frame()  # frame 2 (even): drawn
        assert curves.drawn_epochs == 2
        app.apply_event(epoch(3))
        app._frame()  # frame 3 (odd): the curves wait for the next even frame
        assert curves.drawn_epochs == 2
        app._frame()
        assert curves.drawn_epochs == 3
        await pilot.pause()


@pytest.mark.asyncio
async def test_batch_events_wait_for_the_next_frame_and_keep_their_order():
    import threading

    from vistrain.tui.messages import RunEvent

    def batch(n):
        return BatchEnd(stage="teacher", epoch=1, epochs=5, step=n, steps_per_epoch=20, global_step=n, loss=1.0 / n,
                        lr=1e-3, samples_per_s=640.0, data_wait_s=0.0, step_time_s=0.1)

    app = DashboardApp(refresh_s=3600.0)  # frames driven by hand below
    posted = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.feed(recorded_events(epochs=1)[:2])
        progress, curves = app.query_one(ProgressPanel), app.query_one(CurvesPanel)
        real_post = app.post_message
        app.post_message = lambda message: (isinstance(message, RunEvent) and posted.append(message)) or real_post(message)
        sender = threading.Thread(target=lambda: [app.receive(batch(n)) for n in (1, 2, 3)])  # as the pipe reader does
        sender.start()
        sender.join()
        await pilot.pause()
        assert posted == [] and progress.global_step == 0  # no message per batch: nothing applied yet
        app._frame()
        assert progress.global_step == 3 and curves.series["step_loss"][1] == [1.0, 0.5, 1 / 3]

        app.receive(batch(4))
        app.receive(batch(5))
        app.receive(EpochEnd(stage="teacher", epoch=1, epochs=5, train_loss=0.3, train_top1=0.9, lr=1e-3,
                             duration_s=1.0, samples=100))
        await pilot.pause()
        assert [type(m) for m in posted] == [RunEvent]  # the epoch end is posted at once...
        # ...and the batches before it are applied first, in order
        assert curves.series["step_loss"][1][-2:] == [0.25, 0.2] and curves.series["train_loss"][1] == [0.3]
        assert progress.global_step == 5 and progress.step == 20


def test_curves_of_a_resumed_run_replace_the_replayed_points():
    # events.jsonl of a run killed in epoch 3 (after epoch 2's checkpoint) and resumed: the stage starts
    # again and epoch 3's first steps are logged twice; `vistrain attach` must draw them once, in place
    from vistrain.events import EpochEnd

    def batch(epoch, step, loss):
        return BatchEnd(stage="teacher", epoch=epoch, epochs=4, step=step, steps_per_epoch=4, global_step=0,
                        loss=loss, lr=1e-3, samples_per_s=1.0, data_wait_s=0.0, step_time_s=0.1)

    def epoch_end(n):
        return EpochEnd(stage="teacher", epoch=n, epochs=4, train_loss=1.0 / n, train_top1=0.5, lr=1e-3,
                        duration_s=1.0, samples=100)

    start = StageStarted(stage="teacher", index=1, total=2, epochs=4, steps_per_epoch=4)
    killed = [start] + [e for n in (1, 2) for e in (batch(n, 2, 1.0), batch(n, 4, 0.9), epoch_end(n))] + [
        batch(3, 2, 0.8)]
    resumed = [start, batch(3, 2, 0.7), batch(3, 4, 0.6), epoch_end(3), batch(4, 2, 0.5), batch(4, 4, 0.4),
               epoch_end(4), StageStarted(stage="student", index=2, total=2, epochs=1, steps_per_epoch=4),
               batch(1, 4, 0.3), epoch_end(1)]
    panel = CurvesPanel()
    for event in killed + resumed:
        panel.apply(event)
    xs, ys = panel.series["step_loss"]
    assert xs == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0] and ys[4] == 0.7  # the replay's loss, once
    assert panel.series["train_loss"][0] == [1, 2, 3, 4, 5]  # the student follows the resumed teacher


@pytest.mark.asyncio
async def test_while_paused_batch_events_are_applied_as_they_come():
    import threading

    release = threading.Event()

    class Control:  # what the app asks of RemoteControl / TrainControl
        paused = False

        def toggle_pause(self):
            self.paused = not self.paused
            return self.paused

        def request_stop(self):
            release.set()

    def batch(n):
        return BatchEnd(stage="teacher", epoch=1, epochs=5, step=n, steps_per_epoch=20, global_step=n, loss=1.0,
                        lr=1e-3, samples_per_s=640.0, data_wait_s=0.0, step_time_s=0.1)

    app = DashboardApp(job=lambda bridge, control: release.wait(30), control=Control(), refresh_s=3600.0)
    async with app.run_test(size=(120, 40)) as pilot:
        app.feed(recorded_events(epochs=1)[:2])
        progress = app.query_one(ProgressPanel)
        app.receive(batch(1))
        await pilot.pause()
        assert progress.global_step == 0  # running: it waits for the next frame
        await pilot.press("p")
        assert app.control.paused and progress.global_step == 1  # the pause shows what had arrived
        app.receive(batch(2))  # the step that was in flight
        await pilot.pause()
        assert progress.global_step == 2  # paused: applied as it comes
        await pilot.press("p")
        app.receive(batch(3))
        await pilot.pause()
        assert progress.global_step == 2  # running again: back to the frames
        release.set()


@pytest.mark.asyncio
async def test_the_runs_end_arriving_while_the_app_closes_is_kept_without_raising():
    # Closing mid-run stops the run; its last events and its end then reach an app whose screens are gone.
    # They used to raise ScreenStackError from refresh_bindings (seen in 3 of 25 runs of the pause test).
    from vistrain.tui.messages import RunEnded

    app = DashboardApp(refresh_s=3600.0)
    async with app.run_test(size=(100, 30)):
        app.feed(recorded_events(epochs=1))
    assert app.closing
    app._frame()  # a frame tick after the panels went: skipped
    app.apply_event(recorded_events(epochs=1, finished=True)[-1])
    app.on_run_ended(RunEnded(result="the result"))
    assert app.run_over and app.result == "the result" and app.header.state == "finished"


@pytest.mark.asyncio
async def test_q_pressed_as_the_run_ends_closes_the_dashboard_instead_of_asking_to_stop_a_finished_run():
    # The run's end reaches the dashboard a moment after it is on disk: q pressed in between opened
    # "Stop training?", which then stayed up over a finished run (and a benchmark pressing q hung).
    import asyncio
    import threading

    from vistrain.tui.screens import ConfirmQuitScreen

    release = threading.Event()

    class Control:
        def request_stop(self):
            raise AssertionError("nothing is running that could be stopped")

    app = DashboardApp(job=lambda bridge, control: release.wait(30) and "the result", control=Control(),
                       refresh_s=3600.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuitScreen)
        release.set()
        for _ in range(100):
            if app.return_value is not None:
                break
            await asyncio.sleep(0.02)
    assert app.return_value == "the result" and not app.quitting
