"""How DataLoader workers start (``data.worker_start``): the choice per platform and Python version, the same
batches whatever the method, a clear error when a worker cannot receive the dataset, and no fork of the training
process where the interpreter can deadlock the child (CPython < 3.12, python/cpython#112275)."""

from __future__ import annotations

import multiprocessing
import os
import sys

import numpy as np
import pytest
import torch

from vistrain.augment.pipeline import build_pipeline
from vistrain.data import dataloader as dl
from vistrain.data.pipeline import ImageTransform, InputSpec, build_loader
from vistrain.data.source import ArrayImageSet
from vistrain.errors import ConfigError

SPEC = InputSpec(1, 28, (0.5,), (0.5,))


def _images(n=24):
    rng = np.random.default_rng(0)
    return ArrayImageSet(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), np.arange(n) % 4)


def _batches(worker_start: str, epochs=(0, 1)):
    loader = build_loader(_images(), ImageTransform(SPEC, build_pipeline("affine-deg10-shift2")), 8, shuffle=True,
                          seed=5, num_workers=2, worker_start=worker_start)
    assert isinstance(loader, dl.EpochDataLoader)
    out = []
    for epoch in epochs:
        loader.set_epoch(epoch)
        out += [(x, y) for x, y in loader]
    return loader, out


@pytest.mark.parametrize("safe, method", [(True, "fork"), (False, "forkserver")])
def test_auto_forks_only_where_a_fork_beside_threads_is_safe(monkeypatch, safe, method):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(dl, "FORK_SAFE_WITH_THREADS", safe)
    assert dl.worker_start_method("auto") == method
    assert dl.worker_start_method("spawn") == "spawn"  # an explicit choice is kept


def test_auto_elsewhere_is_the_platform_default(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: "spawn")
    assert dl.worker_start_method("auto") == "spawn"


def test_a_start_method_the_platform_lacks_is_a_config_error(monkeypatch):
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with pytest.raises(ConfigError, match="data.worker_start='fork' is not available") as err:
        dl.worker_start_method("fork")
    assert "auto, spawn" in err.value.hint


def test_the_python_version_decides_auto():
    assert dl.FORK_SAFE_WITH_THREADS == (sys.version_info >= (3, 12))


def test_every_start_method_gives_the_same_batches():
    """Order and per-image augmentation are functions of (seed, epoch, index): not of how workers started."""
    _, ref = _batches("fork")
    assert len(ref) == 6
    for method in ("forkserver", "spawn"):
        loader, got = _batches(method)
        assert loader.multiprocessing_context.get_start_method() == method
        assert len(got) == len(ref)
        for (x, y), (rx, ry) in zip(got, ref):
            assert torch.equal(x, rx) and torch.equal(y, ry), method


def test_the_training_process_does_not_fork_where_that_can_hang(monkeypatch):
    """Under auto before Python 3.12 the workers come from the forkserver (started by fork + exec, which runs no
    Python in the child): the training process itself runs no os.fork, whose child could wait forever on a lock
    held by another thread. With fork it does, so the test can fail."""
    forks = []
    os.register_at_fork(before=lambda: forks.append(os.getpid()))
    monkeypatch.setattr(dl, "FORK_SAFE_WITH_THREADS", False)
    monkeypatch.setattr(sys, "platform", "linux")
    _batches("auto", epochs=(0,))
    assert [p for p in forks if p == os.getpid()] == []
    _batches("fork", epochs=(0,))
    assert os.getpid() in forks


@pytest.mark.filterwarnings("error")
def test_a_dataset_workers_cannot_receive_is_one_clear_error():
    class Jitter:  # a plugin augmentation defined in a function: pickle cannot name it
        def __call__(self, image, rng):
            return image

    transform = ImageTransform(SPEC, build_pipeline("affine"))
    transform.augment = Jitter()
    loader = build_loader(_images(), transform, 8, shuffle=True, num_workers=1, worker_start="forkserver")
    with pytest.raises(ConfigError, match="loader workers started by forkserver receive the dataset .* by pickle") \
            as err:
        next(iter(loader))
    assert "data.worker_start=fork" in err.value.hint and "data.num_workers=0" in err.value.hint
    # forked workers share the object instead: the same loader works with fork
    fork = build_loader(_images(), transform, 8, shuffle=True, num_workers=1, worker_start="fork")
    assert next(iter(fork))[0].shape == (8, 1, 28, 28)


def test_an_unknown_worker_start_is_one_line_and_exit_2(cli):
    code, out, err = cli("run", "--headless", "--epochs", "1", "--set", "data.worker_start=threads")
    assert code == 2
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) <= 2 and "worker_start" in lines[0], lines
    assert "Traceback" not in out + err


def test_workers_that_are_not_forked_get_in_memory_images_through_shared_memory():
    """multiprocessing sends an ArrayImageSet through shared memory (as torch sends tensors), not a copy per process;
    ordinary pickling still copies."""
    import pickle
    from multiprocessing.reduction import ForkingPickler

    images = _images()
    pixels = images.images.copy()
    plain = pickle.loads(pickle.dumps(images))
    sent = pickle.loads(ForkingPickler.dumps(images))
    assert np.array_equal(sent.images, pixels) and np.array_equal(sent.labels, images.labels)
    images.images[0, 0, 0, 0] = 255 - pixels[0, 0, 0, 0]  # the sender's set now reads the shared copy
    assert sent.images[0, 0, 0, 0] == images.images[0, 0, 0, 0]
    assert plain.images[0, 0, 0, 0] == pixels[0, 0, 0, 0]
    again = pickle.loads(ForkingPickler.dumps(images))  # sent once, shared once
    assert again._shared.untyped_storage().data_ptr() == images._shared.untyped_storage().data_ptr()


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_persistent_workers_read_the_parents_images_not_a_copy(method):
    """After an epoch the parent blanks its images: workers that hold their own copy (what pickling gave them
    before) would still return the old pixels in the next epoch."""
    images = _images()
    loader = dl.dataloader(images, ImageTransform(SPEC, build_pipeline("flip-h")), 8, shuffle=True, seed=0, workers=2,
                           drop_last=True, pin_memory=False, rank=0, world_size=1, pad=True, worker_start=method)
    first = torch.cat([x for x, _ in loader])
    assert first.std() > 0.1
    images.images[:] = 0
    loader.set_epoch(1)
    second = torch.cat([x for x, _ in loader])
    assert torch.all(second == -1.0)  # black, normalised with mean 0.5 and std 0.5


def test_without_room_in_shared_memory_each_worker_gets_a_copy_and_one_warning(monkeypatch, capsys):
    """A container's /dev/shm is often 64 MB: images that would fill it are sent by copy, as before, not shared."""
    import collections
    import pickle
    from multiprocessing.reduction import ForkingPickler

    stat = collections.namedtuple("stat", "f_blocks f_bavail f_frsize")
    # 64 MB free (docker's default /dev/shm) is less than the batches' reserve: the 18 kB of images stay out
    monkeypatch.setattr(os, "statvfs", lambda path: stat(16384, 16384, 4096))
    images = _images()
    pixels = images.images.copy()
    sent = pickle.loads(ForkingPickler.dumps(images))
    again = pickle.loads(ForkingPickler.dumps(images))
    images.images[0, 0, 0, 0] = 255 - pixels[0, 0, 0, 0]
    assert sent.images[0, 0, 0, 0] == again.images[0, 0, 0, 0] == pixels[0, 0, 0, 0]  # copies
    err = capsys.readouterr().err
    assert err.count("warning: /dev/shm has 67 MB free: each loader worker gets its own copy") == 1, err
    assert "--shm-size" in err


def test_a_failing_shared_memory_allocation_falls_back_to_copies(monkeypatch, capsys):
    import pickle
    from multiprocessing.reduction import ForkingPickler

    def full(self):
        raise RuntimeError("unable to allocate shared memory(shm) for file </torch_1_2_3>: No space left on device")

    monkeypatch.setattr(torch.Tensor, "share_memory_", full)
    images = _images()
    sent = pickle.loads(ForkingPickler.dumps(images))
    assert np.array_equal(sent.images, images.images) and not hasattr(sent, "_shared")
    assert "warning: no shared memory for the images (unable to allocate shared memory" in capsys.readouterr().err
