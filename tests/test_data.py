"""Datasets, splits, labels_per_class, image folders (corrupt files, channels), torchvision offline."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from vistrain.config import DataConfig
from vistrain.data.pipeline import ImageTransform, InputSpec, adapt_image, build_loader, TensorBatchLoader
from vistrain.data.prepare import load_source, prepare_data
from vistrain.data.splits import labelled_subset, stratified_split
from vistrain.errors import DataError


def test_mnist5k_is_real_mnist():
    src = load_source("mnist5k", DataConfig())
    arr = src.train.as_array()
    assert arr.shape == (5000, 28, 28, 1) and arr.dtype == np.uint8
    assert np.bincount(src.train.labels).tolist() == [500] * 10
    assert src.classes == [str(i) for i in range(10)]
    assert 25 < arr.mean() < 45  # MNIST's mean intensity is ~33


def test_digits_scaled_to_uint8():
    src = load_source("digits", DataConfig())
    assert len(src.train) == 1797 and src.image_size == (8, 8)
    assert src.train.as_array().max() == 255


def test_shapes_are_seeded_and_sized():
    a = load_source("shapes:24", DataConfig(shapes_count=40))
    b = load_source("shapes:24", DataConfig(shapes_count=40))
    assert a.train.as_array().shape == (40, 24, 24, 3)
    assert np.array_equal(a.train.as_array(), b.train.as_array())
    assert np.array_equal(a.unlabeled.image(123), b.unlabeled.image(123))
    assert len(a.unlabeled) >= 40 * 10 and set(a.unlabeled.labels[:10]) == {-1}
    assert len(set(a.train.labels.tolist())) == 5


def test_stratified_split_is_deterministic_and_balanced():
    labels = np.repeat(np.arange(4), 50)
    tr1, va1 = stratified_split(labels, 0.2, seed=3)
    tr2, va2 = stratified_split(labels, 0.2, seed=3)
    _, va3 = stratified_split(labels, 0.2, seed=4)
    assert np.array_equal(va1, va2) and not np.array_equal(va1, va3)
    assert np.bincount(labels[va1]).tolist() == [10] * 4
    assert len(set(tr1) & set(va1)) == 0 and len(tr1) + len(va1) == 200


def test_labels_per_class_leaves_an_unlabelled_pool():
    cfg = DataConfig(labels_per_class=10, val_fraction=0.1)
    data = prepare_data(load_source("mnist5k", cfg), cfg)
    assert np.bincount(data.train.labels).tolist() == [10] * 10
    assert len(data.unlabeled) == 5000 - 500 - 1000 - 100  # val and the held-out test split never join it
    assert len(data.val) == 500 and len(data.test) == 1000
    lab, unl = labelled_subset(np.repeat(np.arange(3), 5), 2, seed=0)
    assert len(lab) == 6 and len(unl) == 9 and not set(lab) & set(unl)


def _folder(tmp_path, n=4):
    for cls, value in (("cat", 60), ("dog", 200)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            img = np.full((20, 20, 3), value + i, np.uint8)
            cv2.imwrite(str(tmp_path / cls / f"{i}.png"), img)
    return tmp_path


def test_imagefolder_lists_files_and_its_loaders_skip_and_name_the_broken_ones(tmp_path):
    import os

    root = _folder(tmp_path)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "dog" / "empty.jpg").write_bytes(b"")
    src = load_source(f"imagefolder:{root}", DataConfig())
    assert src.classes == ["cat", "dog"] and len(src.train) == 10  # listed, nothing decoded
    assert src.image_size == (20, 20) and src.channels == 3  # from the headers of the readable files
    spec = InputSpec(3, 20, (0.5,) * 3, (0.25,) * 3)
    train = build_loader(src.train, ImageTransform(spec), 4, shuffle=True, num_workers=0)
    assert sum(len(x) for x, _ in train) == 10  # a training batch keeps its size: the next readable image stands in
    assert sorted(os.path.basename(n) for n in train.take_skipped()) == ["broken.png", "empty.jpg"]
    assert train.take_skipped() == []
    evaluation = build_loader(src.train, ImageTransform(spec), 4, shuffle=False, num_workers=0)
    assert sum(len(x) for x, _ in evaluation) == 8  # evaluation leaves them out
    assert sorted(os.path.basename(n) for n in evaluation.take_skipped()) == ["broken.png", "empty.jpg"]


def test_grayscale_and_rgb_adapt_to_the_model():
    gray = np.arange(100, dtype=np.uint8).reshape(10, 10, 1)
    rgb = np.dstack([gray[..., 0]] * 3)
    assert adapt_image(gray, 3, 28).shape == (28, 28, 3)
    assert adapt_image(rgb, 1, 28).shape == (28, 28, 1)
    assert np.array_equal(adapt_image(rgb, 1, 10)[..., 0], gray[..., 0])


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: p, "no class subfolders"),
    (lambda p: (p / "a").mkdir() or p, "has no images"),
])
def test_imagefolder_errors(tmp_path, make, message):
    with pytest.raises(DataError, match=message):
        load_source(f"imagefolder:{make(tmp_path)}", DataConfig())


def test_imagefolder_all_corrupt(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="could be read"):
        load_source(f"imagefolder:{tmp_path}", DataConfig())


def test_torchvision_offline_says_where_the_files_go(tmp_path):
    with pytest.raises(DataError) as err:
        load_source("mnist", DataConfig(root=str(tmp_path)))
    text = str(err.value)
    assert "--download" in text and str(tmp_path / "MNIST" / "raw") in text


def _write_idx(path, array):
    dims = array.shape
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_reads_local_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    src = load_source("mnist", DataConfig(root=str(tmp_path)))
    assert len(src.train) == 30 and len(src.test) == 10 and src.classes[0].startswith("0")
    assert src.train.as_array().shape == (30, 28, 28, 1)


def test_fast_path_and_worker_path_give_the_same_tensors():
    src = load_source("digits", DataConfig())
    spec = InputSpec(1, 28, (0.5,), (0.25,))
    images = src.train.subset(np.arange(16))
    fast = build_loader(images, ImageTransform(spec), 8, shuffle=False)
    assert isinstance(fast, TensorBatchLoader)
    tf = ImageTransform(spec)
    slow = np.stack([tf(images.image(i)).numpy() for i in range(16)])
    got = np.concatenate([x.numpy() for x, _ in fast])
    assert np.allclose(got, slow, atol=1e-5)


def test_imagefolder_does_not_follow_symlinks_back_into_the_tree(tmp_path):
    """`ln -s . L/0/self` once turned 12 images into 252, with the same files in train and val."""
    import os

    for label in ("0", "1"):
        (tmp_path / label).mkdir()
        for i in range(6):
            cv2.imwrite(str(tmp_path / label / f"{i}.png"), np.full((8, 8), 40 * i, np.uint8))
    os.symlink(".", tmp_path / "0" / "self")  # a loop
    os.symlink(tmp_path / "1", tmp_path / "0" / "other-class")  # the same files under another label
    outside = tmp_path.parent / f"{tmp_path.name}-extra"
    outside.mkdir()
    cv2.imwrite(str(outside / "x.png"), np.zeros((8, 8), np.uint8))
    os.symlink(outside, tmp_path / "1" / "extra")  # a folder outside the tree is still followed
    source = load_source(f"imagefolder:{tmp_path}", DataConfig())
    assert len(source.train) == 13
    assert len(set(source.train.paths)) == 13
    assert len(source.notes) == 1 and "left out 2 symlinked folder(s)" in source.notes[0]
