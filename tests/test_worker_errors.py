"""Errors in DataLoader worker processes reach the user as one line: a full /dev/shm, a worker killed by a signal,
vistrain's own errors and a plugin's exception raised in a worker (vistrain.data.worker_errors)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from vistrain.augment.pipeline import build_pipeline
from vistrain.cli import exits
from vistrain.data import dataloader as dl
from vistrain.data import worker_errors
from vistrain.data.pipeline import ImageTransform, InputSpec, build_loader
from vistrain.data.source import ArrayImageSet
from vistrain.errors import DataError

SPEC = InputSpec(1, 28, (0.5,), (0.5,))


class FailingImages(ArrayImageSet):
    """Digits whose images run *fail* when read (in the loader worker that reads them)."""

    def __init__(self, fail):
        rng = np.random.default_rng(0)
        super().__init__(rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8), np.arange(16) % 4)
        self.fail = fail

    def image(self, index):
        self.fail()
        return super().image(index)


def _first_epoch(images, workers=1, worker_start="fork"):
    loader = build_loader(images, ImageTransform(SPEC, build_pipeline("affine-deg10-shift2")), 4, shuffle=True,
                          seed=0, num_workers=workers, worker_start=worker_start)
    assert isinstance(loader, dl.EpochDataLoader)
    return [x for x, _y in loader]


def _report(exc, capsys):
    code = exits.report(exc, debug=False)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def _raise_data_error():
    raise DataError("64 images in a row could not be read, from 'a.jpg' on", hint="check the dataset")


def test_a_vistrain_error_in_a_worker_is_its_own_one_line(capsys):
    with pytest.raises(DataError) as err:
        _first_epoch(FailingImages(_raise_data_error))
    assert str(err.value) == "64 images in a row could not be read, from 'a.jpg' on (check the dataset)"
    code, lines = _report(err.value, capsys)
    assert code == 2 and lines == [f"error: {err.value}"]


def _kill(sig):
    os.kill(os.getpid(), sig)


@pytest.mark.parametrize("sig, expect", [(signal.SIGKILL, r"loader worker \(pid \d+\) was killed \(SIGKILL\)"),
                                         (signal.SIGBUS, "shared memory is full")])
def test_a_worker_killed_by_a_signal_is_one_line_with_the_likely_cause(sig, expect, capsys):
    with pytest.raises(DataError, match=expect) as err:
        _first_epoch(FailingImages(lambda: _kill(sig)))
    assert "data.num_workers=0" in err.value.hint
    code, lines = _report(err.value, capsys)
    assert code == 2 and len(lines) == 1


def test_torch_messages_about_dead_workers_that_escape_the_loader_are_translated(capsys):
    # torch raises these from its SIGCHLD handler, possibly during a training step, outside the loader
    code, lines = _report(RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. "), capsys)
    assert code == 2 and lines[0].startswith("error: a loader worker (pid 4242) was killed (SIGKILL)")
    code, lines = _report(RuntimeError("DataLoader worker (pid(s) 17, 18) exited unexpectedly"), capsys)
    assert code == 2 and lines[0].startswith("error: a loader worker (pid 17, 18) ended unexpectedly")
    # a segfault is not the user's to fix: still reported as a bug
    code, lines = _report(RuntimeError("DataLoader worker (pid 9) is killed by signal: Segmentation fault. "), capsys)
    assert code == 1 and "a bug" in lines[0]
    assert worker_errors.translate(ValueError("DataLoader worker (pid 9) is killed by signal: Killed. ")) is None


def test_a_full_shared_memory_while_stacking_a_batch_fails_the_loader_not_the_queue(monkeypatch, capsys):
    # torch allocates a shared segment with posix_fallocate: on a full /dev/shm that raises this RuntimeError. The
    # worker must stack the batch into shared memory itself, so the error reaches the training process; stacked
    # privately, the queue's feeder thread would hit it, print it, and the training process wait forever.
    def full(*_args, **_kwargs):
        raise RuntimeError("unable to allocate shared memory(shm) for file </torch_1_2_3>: "
                           "No space left on device (28)")

    monkeypatch.setattr(torch.storage.TypedStorage, "_new_shared", full)
    with pytest.raises(DataError, match="shared memory is full: loader workers send every batch through /dev/shm"):
        _first_epoch(ArrayImageSet(np.zeros((8, 28, 28, 1), np.uint8), np.zeros(8, np.int64)))
    monkeypatch.undo()
    code, lines = _report(worker_errors.shm_full_error(), capsys)
    assert code == 2 and len(lines) == 1 and "--shm-size" in lines[0]


def test_batches_from_workers_are_stacked_in_shared_memory():
    items = [(torch.full((1, 2, 2), float(i)), torch.tensor(i), []) for i in range(3)]
    here, _, _ = dl.collate(items)
    assert not here.is_shared()  # the training process stacks privately (no workers)

    class Collated(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, index):
            images, targets, _ = dl.collate(items)
            return images.is_shared(), targets.is_shared(), images.clone()

    loader = torch.utils.data.DataLoader(Collated(), batch_size=None, num_workers=1, multiprocessing_context="fork")
    images_shared, targets_shared, images = next(iter(loader))
    assert images_shared and targets_shared
    assert torch.equal(images, torch.stack([x for x, _, _ in items]))


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """An installed-looking third-party plugin module whose augmentation helper raises, registered as 'vt-aug'."""
    from vistrain import plugins

    (tmp_path / "vt_worker_aug.py").write_text(textwrap.dedent("""
        def jitter(image):
            raise ValueError("jitter needs a colour image")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import vt_worker_aug

    plugins.get_plugin_manager()
    plugins.register_plugin(vt_worker_aug, "vt-aug")
    yield vt_worker_aug
    plugins.unregister_plugin("vt-aug")
    sys.modules.pop("vt_worker_aug", None)


def _call_plugin():
    import vt_worker_aug

    vt_worker_aug.jitter(None)


def test_a_plugin_raising_in_a_worker_is_blamed_on_the_plugin(plugin_module, capsys):
    with pytest.raises(worker_errors.WorkerError) as err:
        _first_epoch(FailingImages(_call_plugin))
    assert err.value.type_name == "ValueError" and str(err.value) == "jitter needs a colour image"
    assert ("vt_worker_aug", "jitter") in err.value.frames
    code, lines = _report(err.value, capsys)
    assert code == 2
    assert lines == ["error: plugin 'vt-aug' failed in jitter(): ValueError: jitter needs a colour image (update or "
                     "fix the plugin, or leave it out with VISTRAIN_PLUGINS; 'vistrain plugins list' shows them)"]


def _raise_key_error():
    {}["size"]


def test_any_other_exception_in_a_worker_is_a_bug_report_line_without_the_worker_traceback(capsys):
    with pytest.raises(worker_errors.WorkerError) as err:
        _first_epoch(FailingImages(_raise_key_error))
    code, lines = _report(err.value, capsys)
    assert code == 1
    assert lines == ["error: unexpected KeyError in loader worker 0: 'size' (a bug: please report it; run with "
                     "--debug for the traceback)"]
    assert "Traceback" in err.value.traceback and "_raise_key_error" in err.value.traceback


def _can_mount_a_small_shm() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=2m tmpfs /dev/shm"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_a_small_shm(), reason="needs unshare -m and tmpfs mounts (root on Linux)")
@pytest.mark.parametrize("worker_start", ["fork", "forkserver"])
def test_a_run_on_a_2_mb_dev_shm_ends_with_one_line_and_exit_2(tmp_path, worker_start):
    # 2 workers × 4 batches in flight × 128 digits need about 3 MB: before, this run printed the feeder threads'
    # tracebacks and then waited for its first batch forever
    run = (f"mount -t tmpfs -o size=2m tmpfs /dev/shm && exec {sys.executable} -m vistrain run --headless "
           f"--data mnist5k --epochs 1 --out {tmp_path / 'runs'} --set data.num_workers=2 "
           f"--set data.worker_start={worker_start}")
    done = subprocess.run(["unshare", "-m", "sh", "-c", run], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "VISTRAIN_PLUGINS": "none"})
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: shared memory is full"), done.stderr[-3000:]
    assert "--shm-size" in lines[0] and "data.num_workers=0" in lines[0]
