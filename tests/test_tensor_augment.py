"""Batch tensor augmentation matches the per-image OpenCV ops, and its loader is seeded and resumable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vistrain.augment.pipeline import build_pipeline
from vistrain.augment.randaugment import RandAugment
from vistrain.augment.tensor_ops import TENSOR_OPS

# one spec per op with a tensor form; m-forms exercise the fixed-magnitude random sign
SPECS = ["affine-deg10-shift2-scale0.1-shear5", "affine-m12", "rotate-deg20", "rotate-m9", "shear-x", "shear-y-m20",
         "translate-x", "translate-y-m9", "flip-h", "flip-v", "crop-pad4", "crop-m6", "cutout-frac0.3",
         "cutout-frac0.6-fmin0.1",
         "brightness", "brightness-add-m9", "contrast-factor0.8", "color", "solarize-threshold100", "posterize-bits3",
         "identity", "affine,flip-h,contrast-p0.5", "elastic", "elastic-m25-sigma3", "sharpness-m20", "autocontrast",
         "equalize",
         "affine-deg10-shift2-scale0.1-shear5,elastic-p0.5"]


def _images(channels: int, n: int = 1, size: int = 20) -> np.ndarray:
    rng = np.random.default_rng(channels)
    base = (rng.random((n, size, size, channels)) * 255).astype(np.uint8)
    base[:, 5:12, 6:14] = 255  # a bright block so geometry and contrast matter
    return base


def test_every_tensor_op_is_covered_by_a_spec():
    names = {type(build_pipeline(s).steps[0].op) for s in SPECS}
    assert set(TENSOR_OPS) <= names | {RandAugment}  # RandAugment: tests/test_tensor_randaugment.py


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("channels", [1, 3])
def test_tensor_op_equals_opencv_op_given_the_same_random_stream(spec, channels):
    pipeline = build_pipeline(spec)
    batch_fn = pipeline.on_tensors()
    assert batch_fn is not None
    img = _images(channels)[0]
    for seed in range(6):
        want = pipeline(img.copy(), np.random.default_rng(seed)).astype(np.float32)
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
        got = batch_fn(x, np.random.default_rng(seed))[0].permute(1, 2, 0).numpy()
        diff = np.abs(got - want.reshape(got.shape))
        # OpenCV interpolates on a 1/32-pixel fixed-point grid and rounds once; off by one level at most pixels
        assert diff.max() <= 2 and diff.mean() < 0.15, (spec, seed, diff.max(), diff.mean())


def test_each_image_of_a_batch_gets_its_own_parameters():
    imgs = np.repeat(_images(1), 16, axis=0)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    out = build_pipeline("affine").on_tensors()(x, np.random.default_rng(0))
    assert len({o.numpy().tobytes() for o in out}) == 16


@pytest.mark.parametrize("spec", ["cutout-frac0.25-fmin0.05", "cutout-frac0.25"])
@pytest.mark.parametrize("tensor", [False, True])
def test_cutout_with_fmin_draws_each_images_side_between_fmin_and_frac(spec, tensor):
    pipeline = build_pipeline(spec)
    white = np.full((300, 40, 40, 1), 255, np.uint8)
    rng = np.random.default_rng(0)
    if tensor:
        out = pipeline.on_tensors()(torch.from_numpy(white).permute(0, 3, 1, 2).float(), rng)
        out = out.permute(0, 2, 3, 1).numpy()
    else:
        out = np.stack([pipeline(img.copy(), rng) for img in white])
    hole = out[..., 0] == 0
    # each hole's longer extent: its side, unless the border clipped it on both axes (rare at 10 of 40 pixels)
    extent = np.maximum(hole.any(axis=2).sum(axis=1), hole.any(axis=1).sum(axis=1))
    assert extent.max() == 10 and extent.min() >= (1 if "fmin" in spec else 5)
    share_full = float(np.mean(extent == 10))
    if "fmin" in spec:  # sides of 2..10 pixels drawn per image
        assert len(np.unique(extent)) >= 8 and share_full < 0.2
    else:  # one side for all
        assert share_full > 0.9


def test_ops_without_a_tensor_form_stay_per_image():
    assert build_pipeline("affine,perspective").on_tensors() is None
    assert build_pipeline("flip-h,resized-crop").on_tensors() is None


def _loader(prefetch: bool, seed: int = 3):
    from vistrain.data.device_loader import DeviceAugmentLoader

    imgs = _images(1, n=300, size=16)
    return DeviceAugmentLoader(imgs, np.arange(300) % 10, build_pipeline("affine,flip-h,crop-pad2").on_tensors(),
                               mean=(0.5,), std=(0.25,), batch_size=64, shuffle=True, seed=seed, prefetch=prefetch)


def _augment_threads() -> int:
    import threading

    return sum(t.name.startswith("vistrain-augment") for t in threading.enumerate())


def test_close_ends_the_prefetch_thread_and_the_loader_still_gives_the_same_batches():
    before = _augment_threads()
    a, b = _loader(True), _loader(False)
    first = [x for x, _ in a]
    assert _augment_threads() == before + 1
    a.close()
    assert _augment_threads() == before
    a.close()  # twice is harmless
    again = [x for x, _ in a]  # a new thread, the same stream
    b_batches = [x for x, _ in b]
    assert all(torch.equal(x, y) for x, y in zip(first, b_batches)) and all(torch.equal(x, y) for x, y in zip(again, b_batches))
    a.close()
    assert _augment_threads() == before


def test_device_loader_is_seeded_per_epoch_and_prefetch_changes_nothing():
    a, b, c = _loader(True), _loader(False), _loader(True, seed=4)
    for epoch in (1, 2):
        for loader in (a, b, c):
            loader.set_epoch(epoch)
        batches = list(zip(a, b, c))
        assert len(batches) == 5 and batches[-1][0][0].shape == (300 - 4 * 64, 1, 16, 16)
        for (xa, ya), (xb, yb), (xc, _) in batches:
            assert torch.equal(xa, xb) and torch.equal(ya, yb) and not torch.equal(xa, xc)
    a.set_epoch(1)
    assert not torch.equal(next(iter(a))[0], batches[0][0][0])  # epoch 2 differs from epoch 1's replay


def test_device_loader_resumes_mid_epoch_from_its_state_dict():
    a = _loader(True)
    a.set_epoch(7)
    it = iter(a)
    next(it), next(it)
    state = a.state_dict()
    rest = [x for x, _ in it]
    b = _loader(True)
    b.load_state_dict(state)
    b.set_epoch(7)
    again = [x for x, _ in b]
    assert state["batch_index"] == 2 and len(again) == len(rest) == 3
    assert all(torch.equal(u, v) for u, v in zip(rest, again))


def _mixed(prefetch: bool, calls: list, rank: int = 0, world_size: int = 1):
    """Noisy Student's mixed loader over two device loaders (13 steps, the labelled side of 8 cycled)."""
    from vistrain.data.device_loader import DeviceAugmentLoader
    from vistrain.data.pipeline import MixedBatchLoader

    augment = build_pipeline("affine,flip-h,contrast-p0.5").on_tensors()

    def counted(x, rng):
        calls.append(len(x))
        return augment(x, rng)

    def loader(n, batch, seed):
        return DeviceAugmentLoader(_images(1, n=n, size=12), np.arange(n) % 10, counted, mean=(0.5,), std=(0.25,),
                                   batch_size=batch, shuffle=True, seed=seed, prefetch=prefetch, rank=rank,
                                   world_size=world_size)

    main, extra = loader(150, 12 // world_size, 1), loader(37, 5 // world_size, 0)
    extra.weights = torch.linspace(0.1, 1.0, 37)  # balanced sampling draws through the same plan
    return MixedBatchLoader(main, extra, 10)


def _reference(mixed, epoch: int) -> list:
    """What the mixed loader yields for *epoch*, built from plain iterations: each side set to an epoch, in turn."""
    main, extra = mixed.main, mixed.extra
    main.set_epoch(epoch)
    mains, extras, cycle = list(main), [], 0
    while len(extras) < len(mains):
        extra.set_epoch(epoch * 1000 + cycle)
        extras += list(extra)
        cycle += 1
    return [torch.cat([x, x2]) for (x, _), (x2, _) in zip(mains, extras)]


@pytest.mark.parametrize("rank, world_size", [(0, 1), (1, 2)])
def test_mixed_device_loaders_prepare_each_epoch_and_cycle_ahead_and_yield_the_same_stream(rank, world_size):
    """The labelled side runs on across its cycles and both sides make the next epoch's first batch during the
    last step: the batches are bitwise those of unprepared loaders, and none is made twice."""
    calls, plain_calls = [], []
    mixed, plain = _mixed(True, calls, rank, world_size), _mixed(False, plain_calls, rank, world_size)
    steps = len(mixed)
    assert len(mixed.extra) < steps  # the labelled side is cycled within an epoch
    for epoch in range(3):
        mixed.set_epoch(epoch)
        plain.set_epoch(epoch)
        got = [x for x, _ in mixed]
        for side in (mixed.main, mixed.extra):
            side._executor().submit(int).result()  # its prefetch thread has finished what it was given
        assert len(calls) == 2 * steps * (epoch + 1) + 2  # the batches used, and the next epoch's two first ones
        want = [x for x, _ in plain]
        assert len(got) == len(want) == steps and all(torch.equal(a, b) for a, b in zip(got, want))
        reference = _reference(_mixed(False, [], rank, world_size), epoch)
        assert all(torch.equal(a, b) for a, b in zip(got, reference))
    assert len(plain_calls) == 2 * steps * 3  # no prefetch: nothing made ahead


@pytest.mark.parametrize("rank, world_size", [(0, 1), (1, 2)])
@pytest.mark.parametrize("prefetch", [True, False])
@pytest.mark.parametrize("done", [5, 8, 11])  # within the labelled side's first pass, at its end, in its second
def test_mixed_device_loaders_resume_mid_epoch_without_making_the_done_batches_again(tmp_path, done, prefetch,
                                                                                      rank, world_size):
    """A mixed epoch stopped after *done* steps and resumed from its state_dict (through a weights-only
    checkpoint) yields bitwise the batches an unbroken epoch yields after those steps, and makes only them."""
    epoch = 2
    reference = _reference(_mixed(False, [], rank, world_size), epoch)
    first = _mixed(prefetch, [], rank, world_size)
    first.set_epoch(epoch)
    batches = iter(first)
    got = [next(batches)[0] for _ in range(done)]
    assert all(torch.equal(a, b) for a, b in zip(got, reference))
    torch.save(first.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["position"] == done and state["extra"]["epoch"] == epoch * 1000 + (done - 1) // len(first.extra)
    calls: list = []
    resumed = _mixed(prefetch, calls, rank, world_size)
    resumed.set_epoch(epoch)
    resumed.load_state_dict(state)
    rest = [x for x, _ in resumed]
    assert len(rest) == len(reference) - done and all(torch.equal(a, b) for a, b in zip(rest, reference[done:]))
    if prefetch:
        for side in (resumed.main, resumed.extra):
            side._executor().submit(int).result()
    # the steps left on both sides (and, prefetching, the next epoch's two first batches): nothing replayed
    assert len(calls) == 2 * len(rest) + (2 if prefetch else 0)
    resumed.set_epoch(epoch)  # the next iteration starts the epoch from its first batch again
    assert all(torch.equal(a, b) for (a, _), b in zip(resumed, reference))


def test_a_prepared_epoch_is_dropped_for_a_resume_or_another_epoch():
    a = _loader(True)
    a.set_epoch(2)
    list(a)  # prepares epoch 3
    b = _loader(False)
    b.set_epoch(3)
    it = iter(b)
    next(it), next(it)
    a.load_state_dict(b.state_dict())  # epoch 3 from its third batch: not the prepared first one
    a.set_epoch(3)
    rest = list(a)
    assert len(rest) == 3 and all(torch.equal(u, v) for (u, _), (v, _) in zip(rest, list(b)[2:]))
    a.set_epoch(5)  # epoch 4 was prepared, 5 is asked for
    b.set_epoch(5)
    assert all(torch.equal(u, v) for (u, _), (v, _) in zip(a, b))


def test_build_loader_picks_the_device_loader_and_required_mode_explains_refusals():
    from vistrain.data.device_loader import DeviceAugmentLoader
    from vistrain.data.pipeline import AugmentedArrayLoader, ImageTransform, InputSpec, build_loader
    from vistrain.data.source import ArrayImageSet
    from vistrain.errors import ConfigError

    images = ArrayImageSet(_images(1, n=40, size=16), np.arange(40) % 4)
    spec = InputSpec(1, 16, (0.5,), (0.25,))
    tf = ImageTransform(spec, build_pipeline("affine"))
    assert isinstance(build_loader(images, tf, 8, shuffle=True), DeviceAugmentLoader)
    assert isinstance(build_loader(images, tf, 8, shuffle=True, device_augment=False), AugmentedArrayLoader)
    # an explicit worker count asks for per-image ops; device_augment=true overrides it
    assert isinstance(build_loader(images, tf, 8, shuffle=True, num_workers=0), AugmentedArrayLoader)
    assert isinstance(build_loader(images, tf, 8, shuffle=True, num_workers=0, device_augment=True), DeviceAugmentLoader)
    per_image = ImageTransform(spec, build_pipeline("perspective"))
    assert isinstance(build_loader(images, per_image, 8, shuffle=True), AugmentedArrayLoader)
    with pytest.raises(ConfigError, match="tensor form"):
        build_loader(images, per_image, 8, shuffle=True, device_augment=True)
    # the device loader normalises as the per-image path does
    x, _ = next(iter(build_loader(images, ImageTransform(spec, build_pipeline("identity")), 40, shuffle=False)))
    assert torch.allclose(x, tf.normalise_batch(images.as_array()), atol=1e-5)


@pytest.mark.parametrize("h, w, sigma", [(28, 28, 4.0), (28, 100, 14.3), (5, 40, 3.0), (1, 9, 2.0)])
def test_gaussian_blur_batch_equals_opencv_even_when_the_kernel_is_wider_than_the_image(h, w, sigma):
    import cv2

    from vistrain.augment.tensor_ops import gaussian_blur_batch

    a = np.random.default_rng(h * w).uniform(-1, 1, (h, w)).astype(np.float32)
    got = gaussian_blur_batch(torch.from_numpy(a)[None, None], sigma)[0, 0].numpy()
    np.testing.assert_allclose(got, cv2.GaussianBlur(a, (0, 0), sigma), atol=1e-6)


def test_elastic_moves_pixels_by_about_the_papers_amount_and_alpha_zero_is_identity():
    from vistrain.augment.geometric import Elastic

    img = _images(1, size=28)[0]
    assert np.array_equal(Elastic(alpha=0)(img, np.random.default_rng(0)), img)
    field = Elastic().field(28, 28, np.random.default_rng(0))
    rms = float(np.sqrt((field ** 2).sum(axis=0).mean()))
    assert 0.5 < rms < 4.0, rms  # sigma 4, alpha 34: displacements of a pixel or two, smooth
    assert np.abs(np.diff(field, axis=2)).max() < 1.0  # neighbours move together (unsmoothed: tens of px apart)
    assert not np.array_equal(Elastic()(img, np.random.default_rng(0)), img)
