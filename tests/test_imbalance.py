"""Class imbalance: class weights, the balanced sampler on every loader path (and its exact resume), and the
weights reaching the loss of a run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from vistrain.data.balance import balance_line, balanced_sample_weights, class_counts, class_weights
from vistrain.data.pipeline import ImageTransform, InputSpec, build_loader
from vistrain.data.sampling import epoch_permutation
from vistrain.data.source import ArrayImageSet
from vistrain.errors import ConfigError

COUNTS = [90, 30, 9, 1]


def test_inverse_weights_are_scikit_learns_balanced_weights():
    labels = np.repeat(np.arange(4), COUNTS)
    expected = compute_class_weight("balanced", classes=np.arange(4), y=labels)
    assert class_weights(COUNTS, "auto").numpy() == pytest.approx(expected, rel=1e-6)
    assert class_weights(COUNTS, "inverse").numpy() == pytest.approx(expected, rel=1e-6)
    assert class_weights([10, 10, 10], "auto").numpy() == pytest.approx([1, 1, 1])
    assert class_weights(COUNTS, "none") is None


def test_effective_number_weights_follow_cui_et_al():
    beta = 0.99
    raw = np.array([(1 - beta) / (1 - beta ** n) for n in COUNTS])
    assert class_weights(COUNTS, "effective", beta).numpy() == pytest.approx(raw * 4 / raw.sum(), rel=1e-5)
    assert class_weights(COUNTS, "effective", 0.0).numpy() == pytest.approx([1, 1, 1, 1])
    # a class without images takes the largest weight of the others
    w = class_weights([50, 0, 5], "auto").numpy()
    assert w[1] == pytest.approx(w.max()) and w[2] > w[0]


def test_explicit_weights_and_their_errors():
    assert class_weights([5, 5], [1.0, 3.0]).tolist() == [1.0, 3.0]
    with pytest.raises(ConfigError, match="has 3 numbers but the dataset has 2 classes"):
        class_weights([5, 5], [1, 2, 3])
    with pytest.raises(ConfigError, match="non-negative"):
        class_weights([5, 5], [1, -2])
    with pytest.raises(ConfigError, match="unknown train.class_weights"):
        class_weights([5, 5], "sqrt")


def test_the_balance_line_says_what_is_done():
    assert balance_line([10, 10], ["a", "b"], "shuffle", "none") is None
    hint = balance_line([100, 10], ["a", "b"], "shuffle", "none")
    assert "from 10 images (b) to 100 (a), 10.0x" in hint and "data.sampler=balanced" in hint
    assert "balancing with data.sampler=balanced" in balance_line([100, 10], ["a", "b"], "balanced", "none")
    assert "count about twice over" in balance_line([100, 10], ["a", "b"], "balanced", "auto")


def test_soft_targets_count_towards_their_most_probable_class():
    soft = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert class_counts(soft, 2).tolist() == [2, 1]


def test_the_weighted_order_is_a_function_of_seed_and_epoch_and_draws_classes_evenly():
    labels = np.repeat(np.arange(4), np.array(COUNTS) * 10)  # 1,300 images, 900 of class 0, 10 of class 3
    w = balanced_sample_weights(labels, 4)
    a = epoch_permutation(len(labels), shuffle=True, seed=3, epoch=2, weights=w)
    assert torch.equal(a, epoch_permutation(len(labels), shuffle=True, seed=3, epoch=2, weights=w))
    assert not torch.equal(a, epoch_permutation(len(labels), shuffle=True, seed=3, epoch=3, weights=w))
    drawn = np.bincount(labels[a.numpy()], minlength=4)
    assert len(a) == len(labels) and all(250 <= d <= 400 for d in drawn), drawn  # 325 each on average
    assert np.bincount(labels[epoch_permutation(len(labels), shuffle=True, seed=3, epoch=2).numpy()]).tolist() == \
        [900, 300, 90, 10]


def _images(n_per_class=(60, 6)):
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    rng = np.random.default_rng(0)
    return ArrayImageSet(rng.integers(0, 255, (len(labels), 8, 8, 1), dtype=np.uint8), labels), labels


LOADER_PATHS = {  # (augment, num_workers, device_augment): which loader build_loader picks
    "TensorBatchLoader": (None, "auto", "auto"),
    "AugmentedArrayLoader": ("flip-h", 0, False),
    "DeviceAugmentLoader": ("flip-h", "auto", True),
    "EpochDataLoader": ("flip-h", 1, False),
}


def _loader(images, labels, path, seed=0):
    from vistrain.augment import build_augmentation
    from vistrain.config import AugmentConfig

    aug, workers, device_augment = LOADER_PATHS[path]
    image_aug = build_augmentation(AugmentConfig(spec=aug), num_classes=2)[0] if aug else None
    transform = ImageTransform(InputSpec(channels=1, size=8, mean=(0.5,), std=(0.5,)), image_aug)
    return build_loader(images, transform, 16, shuffle=True, seed=seed, num_workers=workers,
                        device_augment=device_augment, device=torch.device("cpu"),
                        sample_weights=balanced_sample_weights(labels, 2))


@pytest.mark.parametrize("path", list(LOADER_PATHS))
def test_every_loader_path_samples_balanced_and_resumes_exactly(path):
    images, labels = _images()
    loader = _loader(images, labels, path)
    assert type(loader).__name__ == path
    drawn = np.zeros(2, dtype=int)
    for epoch in range(4):
        loader.set_epoch(epoch)
        for _x, y in loader:
            drawn += np.bincount(y.numpy(), minlength=2)
    assert drawn.sum() == 4 * 66 and drawn[1] >= 90, drawn  # 132 expected of the rare class, 24 when shuffled
    # a loader that resumes after 2 batches of epoch 1 gives the rest of that epoch's batches
    loader.set_epoch(1)
    full = [(x.clone(), y.clone()) for x, y in loader]
    again = _loader(images, labels, path)
    again.set_epoch(1)
    it = iter(again)
    next(it), next(it)
    state = again.state_dict()
    resumed = _loader(images, labels, path)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(full) - 2
    for (x, y), (x2, y2) in zip(full[2:], rest):
        assert torch.equal(y, y2) and torch.allclose(x, x2)


def test_a_run_weights_its_loss_and_samples_balanced(tmp_path, monkeypatch):
    """An imbalanced image folder: the cross-entropy a run computes gets the inverse-frequency weights, and the
    run's log says what is done."""
    from tests.conftest import write_png_digits
    from vistrain.config import resolve_config
    from vistrain.runfolder import read_events
    from vistrain.runner import execute
    from vistrain.strategies import stages

    root = write_png_digits(tmp_path / "pngs", per_class=30, classes=["0", "1", "2"])
    for f in sorted((root / "2").glob("*.png"))[5:]:
        f.unlink()  # 30, 30 and 5 images
    seen = []
    original = stages.soft_cross_entropy

    def recording(logits, target, label_smoothing=0.0, weight=None):
        seen.append(None if weight is None else weight.cpu().clone())
        return original(logits, target, label_smoothing, weight)

    monkeypatch.setattr(stages, "soft_cross_entropy", recording)
    cfg = resolve_config(None, {"output.dir": str(tmp_path / "runs"), "data.name": f"imagefolder:{root}"},
                         ["train.epochs=1", "train.class_weights=auto", "data.sampler=balanced", "data.batch_size=16",
                          "data.val_fraction=0.2", "data.test_fraction=0"])
    result = execute(cfg)
    counts = class_counts(np.asarray(
        [0] * 24 + [1] * 24 + [2] * 4), 3)  # the train split: 80 % of each class (stratified)
    expected = class_weights(counts, "auto")
    assert seen and all(w is not None and torch.allclose(w, expected) for w in seen)
    events, _ = read_events(result.run_dir / "events.jsonl")
    logs = " ".join(getattr(e, "message", "") for e in events)
    assert "balancing with data.sampler=balanced and train.class_weights=auto" in logs


def test_distillation_weights_its_label_term():
    from vistrain.strategies.distill import distillation_loss

    logits, teacher = torch.randn(8, 3), torch.randn(8, 3)
    targets = torch.tensor([0, 0, 0, 0, 0, 1, 1, 2])
    w = torch.tensor([0.5, 1.0, 4.0])
    got = distillation_loss(logits, teacher, targets, 4.0, 0.0, class_weight=w)
    assert torch.allclose(got, torch.nn.functional.cross_entropy(logits, targets, weight=w))
    assert not torch.allclose(got, distillation_loss(logits, teacher, targets, 4.0, 0.0))
