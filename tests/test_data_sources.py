"""Real photo collections: lazy folders, photo geometry and reduced decoding, unreadable files, CSV, WebDataset
shards, Hugging Face datasets, unlabelled pools, recipes, and every sample once per epoch across DDP ranks."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch

from vistrain.config import DataConfig, resolve_config
from vistrain.data import decode, geometry, recipes
from vistrain.data.pipeline import ImageTransform, InputSpec, build_loader
from vistrain.data.prepare import load_source, prepare_data
from vistrain.errors import DataError

RGB = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
FAST = ["--headless", "--epochs", "2", "--set", "data.batch_size=8", "--set", "output.system_interval_s=0.5",
        "--log-every", "1000"]


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth RGB image with a disc, whose class (0, 1 or 2) is the disc's colour channel."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 40, np.uint8)
    img[..., :] += np.linspace(0, 60, w, dtype=np.uint8)[None, :, None]
    colour = [30, 30, 30]
    colour[seed % 3] = 230
    cv2.circle(img, (int(rng.integers(w // 3, 2 * w // 3)), int(rng.integers(h // 3, 2 * h // 3))), min(h, w) // 4,
               tuple(colour[::-1]), -1)
    return img


def photo_folder(root, per_class: int = 8, size=(90, 140), flat: bool = False):
    """DIR/<class>/<n>.jpg photos of varying size (classes a, b, c by disc colour); returns the paths."""
    rng = np.random.default_rng(0)
    paths = []
    for k in range(3 * per_class):
        h, w = int(rng.integers(*size)), int(rng.integers(*size))
        folder = root if flat else root / "abc"[k % 3]
        folder.mkdir(parents=True, exist_ok=True)
        paths.append(folder / f"{k:03d}.jpg")
        cv2.imwrite(str(paths[-1]), photo(h, w, k))
    return paths


# --- decoding -------------------------------------------------------------------------------------


def test_a_truncated_jpeg_is_an_error_not_a_grey_image(tmp_path):
    data = cv2.imencode(".jpg", photo(200, 300, 1))[1].tobytes()
    assert decode.decode(data).shape == (200, 300, 3)
    with pytest.raises(decode.ImageDecodeError, match="broken JPEG"):
        decode.decode(data[: len(data) * 2 // 3])
    with pytest.raises(decode.ImageDecodeError, match="not a readable image"):
        decode.decode(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(decode.ImageDecodeError, match="empty"):
        (tmp_path / "e.jpg").write_bytes(b"")
        decode.read_image_file(tmp_path / "e.jpg")


def test_headers_are_read_without_decoding():
    jpeg = cv2.imencode(".jpg", photo(300, 400, 0))[1].tobytes()
    grey = cv2.imencode(".png", photo(30, 40, 0)[..., 0])[1].tobytes()
    assert decode.header(jpeg) == (300, 400, 3) and decode.header(grey) == (30, 40, 1)
    assert decode.header(b"BM not known") is None


def test_a_jpeg_is_decoded_at_the_reduced_size_asked_for():
    data = cv2.imencode(".jpg", photo(800, 1200, 2))[1].tobytes()
    assert decode.decode(data, min_size=(200, 300)).shape == (200, 300, 3)  # 1/4
    assert decode.decode(data, min_size=(201, 300)).shape[0] > 200  # never below what is asked
    assert geometry.reduction(3000, 4000, 256, 256) == 8 and geometry.reduction(3000, 4000, 800, 800) == 2
    assert geometry.reduction(300, 400, 256, 256) == 1


def with_orientation(img: np.ndarray, orient: int, fmt: str = "JPEG") -> bytes:
    """*img* encoded by PIL with EXIF orientation tag *orient*: the same compressed pixels for every tag."""
    import io

    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orient
    buf = io.BytesIO()
    options = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}.get(fmt, {})
    Image.fromarray(img).save(buf, fmt, exif=exif, **options)
    return buf.getvalue()


# PIL's transposes, named as the EXIF specification lists the eight orientations
EXIF_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
                  7: "TRANSVERSE", 8: "ROTATE_90"}


def as_stored_grey(img: np.ndarray, fmt: str) -> np.ndarray:
    return decode.decode(with_orientation(np.ascontiguousarray(img[..., 0]), 1, fmt))[:, :, 0]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_photo_comes_out_upright_under_each_exif_orientation(fmt):
    """A phone stores a portrait photo sideways with an orientation tag; decoding (and the header's size) follow
    the tag the way PIL's exif_transpose and OpenCV's imread do."""
    from PIL import Image

    stored = photo(24, 40, 1)
    stored[:4, :6] = 255  # a corner that tells every mirroring and turn apart
    as_stored = decode.decode(with_orientation(stored, 1, fmt))
    assert as_stored.shape == (24, 40, 3)
    for orient, name in EXIF_TRANSPOSE.items():
        data = with_orientation(stored, orient, fmt)
        assert decode.orientation(data) == orient
        expected = np.asarray(Image.fromarray(as_stored).transpose(getattr(Image.Transpose, name)))
        got = decode.decode(data)
        assert np.array_equal(got, expected), orient
        if fmt == "JPEG":
            assert decode.header(data) == got.shape
            opencv = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            assert opencv.shape == got.shape and np.abs(opencv.astype(int) - got).mean() < 2, orient
    if fmt == "WEBP":  # WebP has no grey images (PIL stores them as RGB)
        return
    grey = decode.decode(with_orientation(np.ascontiguousarray(stored[..., 0]), 6, fmt))
    assert grey.shape == (40, 24, 1) and np.array_equal(grey[:, :, 0], np.rot90(as_stored_grey(stored, fmt), -1))
    assert decode.orientation(cv2.imencode(".jpg", stored)[1].tobytes()) == 1  # no EXIF at all


def test_a_tiff_comes_out_upright_under_its_orientation_tag():
    """A TIFF keeps its orientation in its own tag (274), not in an EXIF block; OpenCV's TIFF reader applies it,
    so decoding matches PIL's exif_transpose (this pins it, should the TIFF path change)."""
    import io

    from PIL import Image, ImageOps

    stored = photo(24, 40, 2)
    stored[:4, :6] = 255
    for orient in range(1, 9):
        buf = io.BytesIO()
        Image.fromarray(stored).save(buf, "TIFF", tiffinfo={0x0112: orient})
        expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
        got = decode.decode(buf.getvalue())
        assert got.shape == expected.shape and np.array_equal(got, expected), orient


def test_heic_and_avif_photos_are_read_and_without_pillow_heif_the_folder_says_what_to_install(tmp_path, monkeypatch):
    """iPhones save HEIC; AVIF is common on the web. Both are images of a folder, decoded through PIL (HEIC with
    pillow-heif); without pillow-heif a folder with HEIC files is one error line that names the package."""
    pytest.importorskip("pillow_heif")
    from PIL import Image

    from vistrain.data.imagefolder import load_imagefolder

    decode.heif_available()  # registers the HEIC opener with PIL, for writing the test's files too
    for k in range(6):
        folder = tmp_path / "pets" / "ab"[k % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo(60, 80, k)).save(folder / f"{k}.{('heic', 'avif', 'jpg')[k % 3]}", quality=95)
    src = load_imagefolder(str(tmp_path / "pets"), None)
    assert len(src.train) == 6 and src.channels == 3
    names = [src.train.paths[i] for i in range(6)]
    for i, name in enumerate(names):
        img = src.train.image(i)
        assert img.shape == (60, 80, 3) and np.abs(img.astype(int) - photo(60, 80, int(os.path.basename(name)[0]))).mean() < 4, name
    heic = (tmp_path / "pets" / "a" / "0.heic").read_bytes()
    assert decode.is_heif(heic) and decode.header(heic) == (60, 80, 3)

    monkeypatch.setattr(decode, "_HEIF", False)  # as if pillow-heif were not installed
    with pytest.raises(DataError, match="2 HEIC/HEIF image\\(s\\) in .* cannot be read") as err:
        load_imagefolder(str(tmp_path / "pets"), None)
    assert "vistrain[heif]" in err.value.hint
    with pytest.raises(decode.ImageDecodeError, match="pillow-heif is not installed"):
        decode.decode(heic, "x.heic")


def test_a_turned_photo_is_decoded_reduced_and_cropped_upright():
    """A 3000x2000 portrait stored as 2000x3000 with tag 6: the header says 3000x2000, a reduced decode is asked
    for in upright terms and comes out upright, and the random crop matches the one from the full decode."""
    from vistrain.augment.pipeline import build_pipeline

    upright_img = photo(3000, 2000, 2)
    data = with_orientation(np.ascontiguousarray(np.rot90(upright_img, 1)), 6)  # stored turned a quarter left
    assert decode.header(data) == (3000, 2000, 3)
    reduced = decode.decode(data, min_size=(750, 500))
    assert reduced.shape == (750, 500, 3)
    full = decode.decode(data)
    assert full.shape == (3000, 2000, 3) and np.abs(full.astype(int) - upright_img).mean() < 3
    tf = ImageTransform(InputSpec(3, 64, *RGB, resize="crop"), build_pipeline("resized-crop-smin0.5"))
    crop = tf.from_bytes(data, "photo", np.random.default_rng(3))
    box = geometry.random_box(3000, 2000, np.random.default_rng(3), 0.5)
    assert (crop - tf.normalise(geometry.crop_from(full, box, (3000, 2000), 64))).abs().mean() < 0.05


# --- photo geometry -------------------------------------------------------------------------------


def test_evaluation_keeps_the_aspect_ratio_and_takes_the_centre():
    img = photo(200, 400, 0)
    out = geometry.center_crop(img, 64, 0.875)
    assert out.shape == (64, 64, 3)
    side = geometry.shorter_side(64, 0.875)  # 73: resized to 73 x 146, then the central 64 x 64
    expected = cv2.resize(img, (146, side), interpolation=cv2.INTER_AREA)[(side - 64) // 2:(side - 64) // 2 + 64, 41:105]
    assert np.array_equal(out, expected)


def test_a_random_resized_crop_comes_from_the_full_photo_and_reduced_decoding_keeps_it():
    """The crop box is drawn from the full image's size: a 2000x3000 JPEG decoded at 1/4 gives the same crop
    (up to resampling) as the full decode, and each crop lands straight on the input size."""
    from vistrain.augment.pipeline import build_pipeline

    img = photo(2000, 3000, 1)
    data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    spec = InputSpec(3, 64, *RGB, resize="crop")
    tf = ImageTransform(spec, build_pipeline("resized-crop-smin0.5"))
    assert tf.crop_smin == 0.5 and tf.augment is None  # the crop left the pipeline for the full image
    calls = []
    real = decode.decode
    try:
        decode.decode = lambda d, name="", min_size=None, **kw: (calls.append(min_size)
                                                                 or real(d, name, min_size=min_size, **kw))
        reduced = tf.from_bytes(data, "photo", np.random.default_rng(7))
    finally:
        decode.decode = real
    assert calls and calls[0] is not None and calls[0][0] <= 1000  # decoded at 1/2 or less
    box = geometry.random_box(2000, 3000, np.random.default_rng(7), 0.5)
    full = tf.normalise(geometry.crop_from(real(data), box, (2000, 3000), 64))
    assert reduced.shape == (3, 64, 64) and (reduced - full).abs().mean() < 0.05


def test_a_digit_recipe_squashes_and_a_photo_recipe_crops():
    spec = InputSpec(1, 28, (0.5,), (0.25,))
    assert ImageTransform(spec).to_uint8(photo(50, 80, 0)).shape == (28, 28, 1)
    crop = InputSpec(3, 32, *RGB, resize="crop", crop_pct=0.5)
    out = ImageTransform(crop).to_uint8(photo(100, 300, 0))
    assert out.shape == (32, 32, 3)
    assert InputSpec.from_dict(crop.to_dict()) == crop
    assert InputSpec.from_dict({"channels": 1, "size": 8, "mean": [0.5], "std": [0.5]}).resize == "squash"


# --- the lazy folder, unreadable files ------------------------------------------------------------


def test_the_scan_reads_few_headers_and_decodes_almost_nothing(tmp_path, monkeypatch):
    from vistrain.data import imagefolder

    photo_folder(tmp_path, per_class=40)
    decoded, heads = [], []
    real_decode, real_head = decode.decode, imagefolder.FileImageSet.head
    monkeypatch.setattr(decode, "decode", lambda *a, **k: decoded.append(k.get("min_size")) or real_decode(*a, **k))
    monkeypatch.setattr(imagefolder.FileImageSet, "head", lambda self, i: heads.append(i) or real_head(self, i))
    src = load_source(f"imagefolder:{tmp_path}", DataConfig())
    assert len(src.train) == 120 and len(heads) == imagefolder.HEADER_SAMPLE
    assert decoded == [(1, 1)] * imagefolder.DECODE_SAMPLE  # four files checked in full, at the smallest size
    assert src.image_size is None and src.channels == 3
    assert src.train.paths.nbytes < 120 * 120  # paths in two arrays, not 120 Python strings


def truncate(path, share=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])


def test_hidden_files_and_folders_and_a_macs_zip_leftovers_are_not_images(tmp_path):
    """macOS writes ._name resource forks (not images) beside every photo on some drives and in zips, under
    __MACOSX/; Jupyter and others leave dot folders. None of them is an image, a class or a split."""
    from vistrain.data.imagefolder import load_images, load_imagefolder

    paths = photo_folder(tmp_path / "d" / "train", per_class=2)
    fork = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "
    for p in paths[:3]:
        (p.parent / f"._{p.name}").write_bytes(fork)
        (p.parent / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (p.parent / ".ipynb_checkpoints").mkdir(exist_ok=True)
        (p.parent / ".ipynb_checkpoints" / p.name).write_bytes(p.read_bytes())  # a copy: it would count twice
    (tmp_path / "d" / "train" / ".trash").mkdir()
    (tmp_path / "d" / "train" / ".trash" / "x.jpg").write_bytes(paths[0].read_bytes())
    for top in (tmp_path / "d" / "__MACOSX" / "train" / "a", tmp_path / "d" / "train" / "__MACOSX"):
        top.mkdir(parents=True)
        (top / "._000.jpg").write_bytes(fork)
    photo_folder(tmp_path / "d" / "val", per_class=1)
    src = load_imagefolder(str(tmp_path / "d" / "train"), None)
    assert src.classes == ["a", "b", "c"] and sorted(src.train.paths[i] for i in range(6)) == sorted(map(str, paths))
    split = load_imagefolder(str(tmp_path / "d"), None)  # __MACOSX beside train/ and val/: still the split layout
    assert split.classes == ["a", "b", "c"] and len(split.train) == 6 and len(split.val) == 3
    assert len(load_images(str(tmp_path / "d" / "train"), None).train) == 6


def test_a_run_on_a_folder_with_truncated_jpegs_and_a_file_deleted_mid_epoch_trains_to_the_end(cli, tmp_path,
                                                                                                 recorder):
    paths = photo_folder(tmp_path / "photos", per_class=40)
    broken = [paths[5], paths[50]]
    for p in broken:
        truncate(p)

    from vistrain import plugins
    from vistrain.hookspecs import hookimpl

    class DeleteOne:  # a file disappears while the first epoch runs
        @hookimpl
        def on_event(self, event):
            if event.kind == "batch_end" and event.epoch == 1 and paths[77].exists():
                paths[77].unlink()

    plugins.register_plugin(DeleteOne(), "test-deleter")
    try:
        code, out, err = cli("run", *FAST, "--data", f"imagefolder:{tmp_path / 'photos'}", "--model", "lenet5",
                             "--set", "train.log_interval=1", "--set", "data.num_workers=0", "--out", tmp_path,
                             "--name", "r")
    finally:
        plugins.unregister_plugin("test-deleter")
    assert code == 0, err
    skipped = {os.path.basename(p) for e in recorder.of("images_skipped") for p in e.paths}
    assert {p.name for p in broken} | {paths[77].name} <= skipped
    assert "skipped 1 unreadable image(s)" in out or "unreadable image(s)" in out
    assert "run r finished" in out
    from vistrain.report.build import build_report

    html = build_report(tmp_path / "r").render()
    assert "Unreadable images" in html and paths[5].name in html


def test_past_the_allowed_share_of_unreadable_images_the_run_stops_with_one_line(cli, tmp_path):
    paths = photo_folder(tmp_path / "photos", per_class=10)
    for p in paths[1::3]:
        truncate(p)
    code, out, err = cli("run", *FAST, "--data", f"imagefolder:{tmp_path / 'photos'}", "--model", "lenet5",
                         "--set", "data.num_workers=0", "--out", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "could not be read, more than data.max_bad_fraction (0.05)" in err


# --- CSV, shards, Hugging Face ---------------------------------------------------------------------


def test_a_csv_table_names_images_relative_to_itself(tmp_path):
    paths = photo_folder(tmp_path / "pics", per_class=3, flat=True)
    rows = ["path,label"] + [f"pics/{p.name},{'tulip' if i % 2 else 'rose'}" for i, p in enumerate(paths)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    src = load_source(f"csv:{tmp_path / 't.csv'}", DataConfig())
    assert src.classes == ["rose", "tulip"] and len(src.train) == 9 and src.train.labels.tolist()[:3] == [0, 1, 0]
    assert src.train.image(0).shape[2] == 3


def test_a_csv_table_with_a_split_column_keeps_its_own_val_and_test_splits(tmp_path):
    from vistrain.data.prepare import prepare_data

    paths = photo_folder(tmp_path / "pics", per_class=6, flat=True)  # 18 photos
    split = ["train"] * 10 + ["Valid", "val", "validation", "val"] + ["test"] * 3 + [""]
    label = ["rose" if i % 2 else "tulip" for i in range(18)]
    rows = ["path,label,split"] + [f"pics/{p.name},{label[i]},{split[i]}" for i, p in enumerate(paths)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    cfg = DataConfig(name=f"csv:{tmp_path / 't.csv'}")
    src = load_source(cfg.name, cfg)
    data = prepare_data(src, cfg)
    assert src.classes == ["rose", "tulip"] and len(data.train) == 11 and len(data.val) == 4 and len(data.test) == 3
    assert [data.val.name(i) for i in range(4)] == [str(p) for p in paths[10:14]]
    assert data.val.labels.tolist() == [1, 0, 1, 0] and data.test.labels.tolist() == [1, 0, 1]
    assert "11 train rows, 4 val rows, 3 test rows" in src.info[0]
    bad = {"unknown split 'holdout'": (rows[:3] + [f"pics/{paths[3].name},rose,holdout"], "line 4"),
           "label 'lily' of a test row is on no training row": (rows[:3] + [f"pics/{paths[3].name},lily,test"],
                                                                "line 4"),
           "has no training rows": (["path,label,split", f"pics/{paths[0].name},rose,val"], "")}
    for message, (table, where) in bad.items():
        (tmp_path / "bad.csv").write_text("\n".join(table) + "\n")
        with pytest.raises(DataError, match=f"{where}.*{message}" if where else message):
            load_source(f"csv:{tmp_path / 'bad.csv'}", DataConfig())
    # without the 'split' header a third column is someone's notes, as before: every row trains
    (tmp_path / "notes.csv").write_text("\n".join(["path,label,notes"] + [r.rsplit(",", 1)[0] + ",test"
                                                                          for r in rows[1:]]) + "\n")
    notes = load_source(f"csv:{tmp_path / 'notes.csv'}", DataConfig())
    assert len(notes.train) == 18 and notes.val is None and notes.test is None and not notes.info


def pack(tmp_path, source_dir, shard_mb="0.01"):
    from vistrain.cli import main

    assert main(["datasets", "pack", f"imagefolder:{source_dir}", "--to", str(tmp_path / "shards"), "--size", "48",
                 "--shard-mb", shard_mb]) == 0
    shards = sorted((tmp_path / "shards").glob("train-*.tar"))
    return shards, f"webdataset:{tmp_path / 'shards'}/train-{{000000..{len(shards) - 1:06d}}}.tar"


def test_a_folder_packed_as_shards_reads_back_the_same_classes_and_samples(tmp_path, capsys):
    photo_folder(tmp_path / "photos", per_class=6)
    shards, spec = pack(tmp_path, tmp_path / "photos")
    assert len(shards) > 1 and "train: 18 images in" in capsys.readouterr().out
    folder = load_source(f"imagefolder:{tmp_path / 'photos'}", DataConfig())
    src = load_source(spec, DataConfig())
    assert src.classes == folder.classes == ["a", "b", "c"]
    assert len(src.train) == 18 and src.train.labels.tolist() == folder.train.labels.tolist()
    img = src.train.image(3)
    assert min(img.shape[:2]) == 48  # packed at the shorter side asked for
    assert abs(float(img.mean()) - float(cv2.resize(folder.train.image(3), img.shape[1::-1]).mean())) < 3
    from vistrain.data.shards import read_members

    names = [name for name, _, _ in read_members(str(shards[0]))]
    assert names[:2] == ["000000000.cls", "000000000.jpg"]


def test_shards_train_and_resume_exactly(cli, tmp_path):
    """A run on shards stopped mid-epoch and resumed ends as an uninterrupted one (shards are read by
    offset, so they resume as a folder does)."""
    from vistrain.engine.control import TrainControl
    from vistrain.runner import execute

    photo_folder(tmp_path / "photos", per_class=8)
    _, spec = pack(tmp_path, tmp_path / "photos")
    args = dict(**{"data.name": spec, "model.name": "lenet5", "train.epochs": 2, "data.batch_size": 4,
                   "train.deterministic": True, "train.threads": 1, "data.num_workers": 0,
                   "output.dir": str(tmp_path), "checkpoint.every_steps": 1, "output.system_interval_s": 0.5})
    execute(resolve_config(None, {**args, "output.name": "ref"}))

    class StopAt(TrainControl):
        steps = 0

        @property
        def stop_requested(self):
            StopAt.steps += 1
            return StopAt.steps > 5

    first = execute(resolve_config(None, {**args, "output.name": "job"}), control=StopAt())
    assert first.stopped_early
    from vistrain.checkpoint import find_resume_checkpoint

    ckpt, _path, _ = find_resume_checkpoint(first.run_dir / "checkpoints")
    assert ckpt["epoch_step"] > 0  # inside an epoch
    execute(resolve_config(None, {**args, "output.name": "job"}), resume=ckpt, run_dir=first.run_dir)
    a = torch.load(tmp_path / "ref" / "checkpoints" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "job" / "checkpoints" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_hugging_face_dataset_from_disk_and_from_parquet(tmp_path):
    datasets = pytest.importorskip("datasets")
    paths = photo_folder(tmp_path / "p", per_class=4, flat=True)
    features = datasets.Features({"img": datasets.Image(), "kind": datasets.ClassLabel(names=["x", "y", "z"])})
    table = datasets.Dataset.from_dict({"img": [{"bytes": p.read_bytes(), "path": None} for p in paths],
                                        "kind": [i % 3 for i in range(len(paths))]}, features=features)
    table.save_to_disk(str(tmp_path / "disk"))
    table.to_parquet(str(tmp_path / "t.parquet"))
    cfg = DataConfig(image_column="img", label_column="kind")
    for spec in (f"hf:{tmp_path / 'disk'}", f"hf:{tmp_path / 't.parquet'}"):
        src = load_source(spec, cfg)
        assert src.classes == ["x", "y", "z"] and len(src.train) == 12
        assert src.train.labels.tolist()[:4] == [0, 1, 2, 0]
        assert np.array_equal(src.train.image(1), decode.read_image_file(paths[1]))
    with pytest.raises(DataError, match="no column 'label'.*img, kind"):
        load_source(f"hf:{tmp_path / 'disk'}", DataConfig(image_column="img"))


def test_an_image_folder_with_train_val_and_test_folders_uses_them_as_its_splits(cli, tmp_path):
    """DIR/train, DIR/val (or valid, validation) and DIR/test, each <class>/<image>: train trains, val picks best.pt
    and test is held out, labelled by class name; without test/ the test split comes out of train alone."""
    from vistrain.data.prepare import prepare_data

    root = tmp_path / "sp"
    train = photo_folder(root / "train", per_class=6)
    import shutil

    val = [p for p in photo_folder(root / "val", per_class=2) if p.parent.name != "a"]
    shutil.rmtree(root / "val" / "a")  # val's b and c are its folders 0 and 1, train's classes 1 and 2
    test = photo_folder(root / "test", per_class=3)
    cfg = DataConfig(name=f"imagefolder:{root}")
    src = load_source(cfg.name, cfg)
    data = prepare_data(src, cfg)
    assert src.classes == ["a", "b", "c"]
    def names(part):
        return [part.name(i) for i in range(len(part))]

    assert sorted(names(data.train)) == sorted(map(str, train)) and len(data.train) == 18
    for part, paths in ((data.val, val), (data.test, test)):
        assert sorted(zip(names(part), part.labels.tolist())) == sorted(
            (str(p), "abc".index(p.parent.name)) for p in paths)
    assert "train/ (18 images), val/ (4), test/ (9)" in src.info[0]
    code, out, err = cli("run", "--headless", "--data", f"imagefolder:{root}", "--epochs", "1", "--batch-size", "6",
                         "--set", "data.num_workers=0", "--out", tmp_path / "runs", "--name", "r")
    assert code == 0, err
    assert "(18 train / 4 val, 3 classes)" in out and "its own splits" in out and "test split (9 held-out" in out
    best = tmp_path / "runs" / "r" / "checkpoints" / "best.pt"
    for split, count in (("auto", 9), ("val", 4), ("all", 31)):  # all: train/, val/ and test/
        code, out, err = cli("eval", best, "--data", f"imagefolder:{root}", "--split", split, "--workers", "0")
        assert code == 0 and f"{count} images: top-1" in out, err

    # packed as shards: webdataset:DIR reads train-, val- and test-*.tar as the same splits; a pattern, train alone
    from vistrain.cli import main

    assert main(["datasets", "pack", f"imagefolder:{root}", "--to", str(tmp_path / "shards"), "--size", "32"]) == 0
    packed = load_source(f"webdataset:{tmp_path / 'shards'}", DataConfig())
    assert (len(packed.train), len(packed.val), len(packed.test)) == (18, 4, 9)
    assert packed.classes == ["a", "b", "c"] and sorted(packed.val.labels.tolist()) == [1, 1, 2, 2]
    assert "train-*.tar (18 images), val-*.tar (4 images), test-*.tar (9 images)" in packed.info[0]
    alone = load_source(f"webdataset:{tmp_path / 'shards'}/train-000000.tar", DataConfig())
    assert len(alone.train) == 18 and alone.val is None and alone.test is None
    with pytest.raises(DataError, match="has no train-\\*.tar shards"):
        load_source(f"webdataset:{root}", DataConfig())

    # valid/ and no test/: val_fraction does not apply, the test split is test_fraction of train
    (root / "val").rename(root / "valid")
    shutil.rmtree(root / "test")
    cfg = DataConfig(name=f"imagefolder:{root}", test_fraction=1 / 3, val_fraction=0.5)
    data = prepare_data(load_source(cfg.name, cfg), cfg)
    assert len(data.val) == 4 and len(data.test) == 6 and len(data.train) == 12
    assert not set(names(data.test)) & set(names(data.train))
    assert np.bincount(data.test.labels).tolist() == [2, 2, 2]

    # test images without class folders (a competition's): left out, named, and the run takes a share of train
    (root / "test").mkdir()
    cv2.imwrite(str(root / "test" / "x.jpg"), photo(50, 60, 1))
    src = load_source(cfg.name, cfg)
    assert src.test is None and "images are not in class folders" in src.notes[0] and "data.unlabelled" in src.notes[0]

    # a val class train has not, and two val folders: one-line errors
    (root / "valid" / "d").mkdir()
    cv2.imwrite(str(root / "valid" / "d" / "y.jpg"), photo(50, 60, 2))
    with pytest.raises(DataError, match="class folder\\(s\\) 'd' that .*train' has not"):
        load_source(cfg.name, cfg)
    shutil.rmtree(root / "valid" / "d")
    (root / "val").mkdir()
    with pytest.raises(DataError, match="has 2 val folders: val, valid"):
        load_source(cfg.name, cfg)
    # a folder beside train/ that is not a split: the plain layout, every folder a class
    (root / "val").rename(root / "cats")
    cv2.imwrite(str(root / "cats" / "z.jpg"), photo(50, 60, 0))
    assert load_source(cfg.name, cfg).classes == ["cats", "test", "train", "valid"]


def test_a_hugging_face_dataset_with_a_validation_split_keeps_it_as_val(tmp_path):
    datasets = pytest.importorskip("datasets")
    from vistrain.data.prepare import prepare_data

    paths = photo_folder(tmp_path / "p", per_class=4, flat=True)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y", "z"])})

    def table(picks):
        return datasets.Dataset.from_dict({"image": [{"bytes": paths[i].read_bytes(), "path": None} for i in picks],
                                           "label": [i % 3 for i in picks]}, features=features)

    datasets.DatasetDict({"train": table(range(6)), "validation": table(range(6, 9)),
                          "test": table(range(9, 12))}).save_to_disk(str(tmp_path / "disk"))
    cfg = DataConfig(name=f"hf:{tmp_path / 'disk'}")
    src = load_source(cfg.name, cfg)
    data = prepare_data(src, cfg)
    assert len(data.train) == 6 and len(data.val) == 3 and len(data.test) == 3
    assert data.val.labels.tolist() == [0, 1, 2] and "own validation split (3 images)" in src.info[0]
    assert np.array_equal(data.val.image(1), decode.read_image_file(paths[7]))


def test_a_hub_name_is_fetched_only_with_download(tmp_path, monkeypatch):
    """The Hub path itself, against a local dataset standing in for the download."""
    datasets = pytest.importorskip("datasets")
    paths = photo_folder(tmp_path / "p", per_class=2, flat=True)
    local = datasets.Dataset.from_dict({"image": [p.read_bytes() for p in paths], "label": [0, 1, 2, 0, 1, 2]})
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name, **kw: asked.append(name) or datasets.DatasetDict(
        {"train": local, "test": local.select([0, 1, 2])}))
    with pytest.raises(DataError, match="pass --download"):
        load_source("hf:someone/beans", DataConfig())
    assert asked == []  # nothing was fetched without --download
    src = load_source("hf:someone/beans", DataConfig(download=True))
    assert asked == ["someone/beans"] and len(src.train) == 6 and len(src.test) == 3 and src.classes == ["0", "1", "2"]


# --- unlabelled pools -----------------------------------------------------------------------------


def test_noisy_student_labelled_from_one_folder_and_unlabelled_from_another(cli, tmp_path, recorder):
    photo_folder(tmp_path / "labelled", per_class=6)
    photo_folder(tmp_path / "unlabelled", per_class=10, flat=True)
    code, out, err = cli("run", *FAST, "--data", f"imagefolder:{tmp_path / 'labelled'}", "--model", "lenet5",
                         "--strategy", "noisy-student", "--set", f"data.unlabelled=images:{tmp_path / 'unlabelled'}",
                         "--set", "strategy.params.iterations=1", "--set", "strategy.params.teacher_epochs=1",
                         "--set", "strategy.params.student_epochs=1", "--set", "strategy.params.threshold=0.0",
                         "--set", "data.num_workers=0", "--out", tmp_path, "--name", "ns")
    assert code == 0, err
    (stats,) = recorder.of("pseudo_label_stats")
    assert sum(stats.confidence_hist) == 30  # the whole unlabelled folder was labelled by the teacher
    assert stats.accuracy is None and "label accuracy" not in out  # no true labels in a flat folder


def test_a_labelled_source_as_the_unlabelled_pool_keeps_its_labels_hidden_for_the_accuracy(tmp_path):
    photo_folder(tmp_path / "a", per_class=4)
    photo_folder(tmp_path / "b", per_class=5)
    cfg = DataConfig(name=f"imagefolder:{tmp_path / 'a'}", unlabelled=f"imagefolder:{tmp_path / 'b'}")
    data = prepare_data(load_source(cfg.name, cfg), cfg)
    assert len(data.unlabeled) == 15 and set(data.unlabeled.labels.tolist()) == {0, 1, 2}


# --- recipes --------------------------------------------------------------------------------------


def test_each_kind_of_dataset_gets_its_recipe(tmp_path):
    photo_folder(tmp_path / "photos", per_class=2)
    digits_dir = tmp_path / "digits"
    for c in "01":
        (digits_dir / c).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(digits_dir / c / f"{i}.png"), np.full((28, 28), 40 * i, np.uint8))
    kinds = {spec: recipes.kind_of(load_source(spec, DataConfig()))[0]
             for spec in ("mnist5k", "shapes", f"imagefolder:{tmp_path / 'photos'}", f"imagefolder:{digits_dir}")}
    assert list(kinds.values()) == ["digits", "small", "photos", "digits"]
    cfg, line = recipes.resolve(resolve_config(None, {"data.name": "x"}), load_source(f"imagefolder:{tmp_path / 'photos'}", DataConfig()))
    assert cfg.augment.spec == "resized-crop,flip-h" and cfg.data.resize == "crop" and "photos" in line
    mine = resolve_config(None, {"augment.spec": "none"}, ["data.resize=squash"])
    assert recipes.resolve(mine, None) == (mine, None)  # nothing left to vistrain: no data needed


def test_config_show_says_which_recipe_and_why(cli, tmp_path):
    photo_folder(tmp_path / "photos", per_class=2)
    code, out, _ = cli("config", "show", "--data", f"imagefolder:{tmp_path / 'photos'}")
    assert code == 0 and "spec: resized-crop,flip-h" in out and "resize: crop" in out
    assert "# recipe: photos, because" in out and "images of several sizes" in out


def test_a_photo_checkpoint_carries_its_geometry_to_predict(cli, tmp_path):
    paths = photo_folder(tmp_path / "photos", per_class=4)
    code, _out, err = cli("run", *FAST, "--data", f"imagefolder:{tmp_path / 'photos'}", "--model", "lenet5",
                          "--set", "data.num_workers=0", "--out", tmp_path, "--name", "p")
    assert code == 0, err
    from vistrain.models.factory import load_model

    best = tmp_path / "p" / "checkpoints" / "best.pt"
    model, ckpt, spec = load_model(best)
    assert ckpt["input"]["resize"] == "crop" and spec.crop_pct == 0.875
    code, out, _ = cli("predict", best, paths[0], "--top-k", "1")
    x = ImageTransform(spec).normalise(geometry.to_channels(geometry.center_crop(decode.read_image_file(paths[0]),
                                                                                 spec.size, 0.875), 1))
    with torch.no_grad():
        p = torch.softmax(model(x[None]), 1)[0]
    assert out.strip().endswith(f"{ckpt['classes'][int(p.argmax())]} {100 * float(p.max()):.1f}%")
    code, out, _ = cli("eval", best, "--data", f"imagefolder:{tmp_path / 'photos'}")
    assert "top-1" in out and "top-5" not in out  # three classes: top-5 would always be 100 %


# --- DDP: every sample once -----------------------------------------------------------------------


def numbered_images(root, n: int):
    """n PNGs whose pixels hold their number (and class n % 2)."""
    for i in range(n):
        folder = root / str(i % 2)
        folder.mkdir(parents=True, exist_ok=True)
        img = np.zeros((8, 8, 3), np.uint8)
        img[..., 0], img[..., 1] = i % 256, i // 256
        cv2.imwrite(str(folder / f"{i:05d}.png"), img[..., ::-1])


@pytest.mark.parametrize("kind", ["imagefolder", "webdataset"])
@pytest.mark.parametrize("n, batch", [(203, 8), (64, 8), (33, 16)])
def test_two_ranks_see_every_sample_exactly_once_per_epoch(tmp_path, kind, n, batch):
    numbered_images(tmp_path / "numbers", n)
    spec = f"imagefolder:{tmp_path / 'numbers'}"
    if kind == "webdataset":  # the same PNGs (lossless: the numbers survive) in shards of 40 samples
        from webdataset import ShardWriter

        (tmp_path / "shards").mkdir()
        with ShardWriter(str(tmp_path / "shards" / "train-%06d.tar"), maxcount=40, verbose=0) as sink:
            for path in sorted((tmp_path / "numbers").glob("*/*.png"), key=lambda p: p.name):
                sink.write({"__key__": path.stem, "png": path.read_bytes(), "cls": path.parent.name.encode()})
        count = len(list((tmp_path / "shards").glob("*.tar")))
        spec = f"webdataset:{tmp_path / 'shards'}/train-{{000000..{count - 1:06d}}}.tar"
    images = load_source(spec, DataConfig()).train
    tf = ImageTransform(InputSpec(3, 8, (0.0,) * 3, (1 / 255,) * 3), augment=None)
    for epoch in (1, 2):
        seen, steps = [], []
        for rank in (0, 1):
            loader = build_loader(images, tf, batch, shuffle=True, seed=3, num_workers=0, rank=rank, world_size=2)
            loader.set_epoch(epoch)
            batches = [x for x, _ in loader]
            steps.append(len(batches))
            seen += [int(round(float(v[0, 0, 0]))) + 256 * int(round(float(v[1, 0, 0]))) for x in batches for v in x]
        assert steps[0] == steps[1]
        assert sorted(seen) == list(range(n))


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_a_resumed_epoch_with_loader_workers_continues_after_the_batches_done(tmp_path, workers):
    """torch's multi-process iterator calls iter() on the batch sampler twice when it starts: the resume position
    must survive that, or a resumed photo run would replay its epoch from the start. The epoch after it is whole."""
    numbered_images(tmp_path / "numbers", 60)
    images = load_source(f"imagefolder:{tmp_path / 'numbers'}", DataConfig()).train
    tf = ImageTransform(InputSpec(3, 8, (0.0,) * 3, (1 / 255,) * 3), augment=None)

    def numbers(batches):
        return [[int(round(float(v[0, 0, 0]))) for v in x] for x, _ in batches]

    def loader():
        return build_loader(images, tf, 8, shuffle=True, seed=5, num_workers=workers)

    whole = loader()
    whole.set_epoch(2)
    epoch2 = numbers(whole)
    whole.set_epoch(3)
    epoch3 = numbers(whole)
    resumed = loader()
    resumed.load_state_dict({"epoch": 2, "position": 3})
    assert numbers(resumed) == epoch2[3:]
    assert resumed.state_dict() == {"epoch": 2, "position": len(epoch2)}
    resumed.set_epoch(3)
    assert numbers(resumed) == epoch3


def test_persistent_loader_workers_draw_each_epochs_own_augmentation(tmp_path):
    """A worker keeps the copy of the dataset it started with: the epoch must travel with each index, or every
    epoch would repeat the first one's crops and flips. With workers the batches equal those without."""
    from vistrain.augment import build_augmentation
    from vistrain.config import AugmentConfig

    numbered_images(tmp_path / "numbers", 32)
    images = load_source(f"imagefolder:{tmp_path / 'numbers'}", DataConfig()).train
    aug, _ = build_augmentation(AugmentConfig(spec="affine-deg30-shift2"), num_classes=2)
    tf = ImageTransform(InputSpec(3, 8, (0.0,) * 3, (1 / 255,) * 3), aug)
    per_workers = {}
    for workers in (0, 1):
        loader = build_loader(images, tf, 16, shuffle=True, seed=5, num_workers=workers)
        epochs = []
        for epoch in (1, 2, 3):
            loader.set_epoch(epoch)
            epochs.append(torch.cat([x for x, _ in loader]))
        per_workers[workers] = epochs
    for a, b in zip(per_workers[0], per_workers[1]):
        assert torch.equal(a, b)
    e1, e2, e3 = per_workers[1]
    assert not torch.equal(e1, e2) and not torch.equal(e2, e3)
