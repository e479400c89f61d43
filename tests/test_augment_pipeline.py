"""Pipelines from spec strings, YAML lists and files; clear errors; the loaders that apply them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from vistrain.augment import build_augmentation
from vistrain.augment.pipeline import build_pipeline, parse_token
from vistrain.config import AugmentConfig
from vistrain.data.dataloader import EpochDataLoader
from vistrain.data.pipeline import AugmentedArrayLoader, ImageTransform, InputSpec, build_loader
from vistrain.data.source import ArrayImageSet
from vistrain.errors import ConfigError, UnknownNameError


def test_spec_string_parses_names_and_params():
    assert parse_token("flip-h") == ("flip-h", {})
    assert parse_token("crop-pad4") == ("crop", {"pad": 4})
    assert parse_token("rand-n2-m9-mstd0.5") == ("rand", {"n": 2, "m": 9, "mstd": 0.5})
    assert parse_token("affine-deg=12-p0.8") == ("affine", {"deg": 12, "p": 0.8})
    p = build_pipeline("flip-h,crop-pad4,rand-n2-m9")
    assert [s.name for s in p.steps] == ["flip-h", "crop", "rand"]
    assert p.steps[0].p == 0.5 and p.steps[1].p == 1.0
    assert p.spec() == "flip-h,crop-pad4,rand-n2-m9"
    assert build_pipeline("none") is None and build_pipeline("") is None


def test_yaml_list_and_policy_file(tmp_path):
    steps = yaml.safe_load("- flip-h\n- {op: rotate, deg: 10, p: 0.5}\n- {crop: {pad: 2}}\n- shear-x")
    p = build_pipeline(steps)
    assert [(s.name, s.p) for s in p.steps] == [("flip-h", 0.5), ("rotate", 0.5), ("crop", 1.0), ("shear-x", 1.0)]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"pipeline": [{"op": "rand", "n": 1, "m": 5}], "score": 0.9}))
    assert [s.name for s in build_pipeline(str(path)).steps] == ["rand"]
    (tmp_path / "list.yml").write_text("- flip-v\n")
    assert build_pipeline(str(tmp_path / "list.yml")).steps[0].name == "flip-v"


@pytest.mark.parametrize("spec, error, text", [
    ("flip-h,rotat-deg10", UnknownNameError, "did you mean 'rotate'"),
    ("crop-pud4", ConfigError, "no parameter 'pud'.*'pad'"),
    ("rotate-deg500", ConfigError, "deg=500 is outside"),
    ("flip-h-p2", ConfigError, "p=2 is outside"),
    ("crop-pad4x", ConfigError, "crop"),
    ("missing/policy.yaml", ConfigError, "not found"),
])
def test_bad_specs_are_clear_errors(spec, error, text):
    with pytest.raises(error, match=text):
        build_pipeline(spec)


@pytest.mark.parametrize("spec, needle", [("shear-q", "unknown augmentation 'shear-q'"),
                                          ("rand-n2-m99", "m=99 is outside")])
def test_cli_reports_bad_spec_in_one_line_with_exit_2(cli, spec, needle, tmp_path):
    code, out, err = cli("augment", "preview", "--spec", spec, "--out", tmp_path / "g.png")
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_build_augmentation_returns_both_parts():
    image_fn, batch_fn = build_augmentation(AugmentConfig(spec="flip-h", cutmix_alpha=1.0), num_classes=3)
    assert image_fn is not None and batch_fn.num_classes == 3
    assert build_augmentation(AugmentConfig(spec="none")) == (None, None)


def _digits(n=40, size=28, channels=1):
    rng = np.random.default_rng(0)
    return ArrayImageSet(rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8), np.arange(n) % 4)


def test_in_process_loader_is_deterministic_and_varies_by_epoch():
    spec = InputSpec(1, 28, (0.5,), (0.5,))
    tf = ImageTransform(spec, build_pipeline("affine"))
    loader = build_loader(_digits(), tf, 16, shuffle=True, seed=3, num_workers=0)
    assert isinstance(loader, AugmentedArrayLoader) and len(loader) == 3
    loader.set_epoch(1)
    first = [x for x, _ in loader]
    again = build_loader(_digits(), tf, 16, shuffle=True, seed=3, num_workers=0)
    again.set_epoch(1)
    for a, (b, _) in zip(first, again):
        assert torch.equal(a, b)
    again.set_epoch(2)
    assert not torch.equal(first[0], next(iter(again))[0])
    x, y = next(iter(loader))
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_in_process_loader_normalises_like_the_fast_path():
    spec = InputSpec(3, 32, (0.1, 0.2, 0.3), (0.5, 0.4, 0.3))
    images = _digits(8, 32, 3)
    identity = ImageTransform(spec, build_pipeline("identity"))
    x, _ = next(iter(build_loader(images, identity, 8, shuffle=False, num_workers=0)))
    fast, _ = next(iter(build_loader(images, ImageTransform(spec), 8, shuffle=False)))
    assert torch.allclose(x, fast, atol=1e-5)


def test_worker_path_augments_in_workers():
    spec = InputSpec(1, 28, (0.5,), (0.5,))
    loader = build_loader(_digits(16), ImageTransform(spec, build_pipeline("crop-pad2")), 8, shuffle=False, num_workers=1)
    assert isinstance(loader, EpochDataLoader)
    batches = [x for x, _ in loader]
    assert len(batches) == 2 and batches[0].shape == (8, 1, 28, 28)


def test_extend_spec_appends_ops_and_refuses_a_policy_file():
    from vistrain.augment.pipeline import extend_spec

    assert extend_spec("affine", ["rand-n2-m10", "", "cutout-frac0.5"], owner="o", adds="a", key="k") \
        == "affine,rand-n2-m10,cutout-frac0.5"
    assert extend_spec(" none ", ["rand-n2-m9"], owner="o", adds="a", key="k") == "rand-n2-m9"
    assert extend_spec("none", [""], owner="o", adds="a", key="k") == "none"
    with pytest.raises(ConfigError, match="fixmatch cannot add RandAugment and Cutout to the policy file") as err:
        extend_spec("best.yaml", ["rand-n2-m10"], owner="fixmatch", adds="RandAugment and Cutout",
                    key="strategy.params.strong_augment")
    assert "strategy.params.strong_augment" in err.value.hint
