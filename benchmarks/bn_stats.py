"""Do a consistency run's BatchNorm statistics hurt it? Its best.pt as trained against the same weights with
BatchNorm's running statistics recomputed on clean (unaugmented) training images.

A FixMatch batch is 32 labelled images and 2 x 224 unlabelled views, half of them RandAugment'd and cut out,
so the running statistics a BatchNorm model is evaluated with mostly describe strongly augmented images. This
recomputes them (``torch.optim.swa_utils.update_bn``, as ``vistrain average`` does) over the run's labelled
training images, and over every training image (labelled + the unlabelled pool, no labels used), then
evaluates val and the held-out test split of ``heldout:mnist5k`` (``benchmarks/strategies.py``) each way.
Val says whether a user could have chosen the recomputed statistics; test is reported beside it.

    python benchmarks/bn_stats.py runs/c27bn/fixmatch-50pc-s0-batchnorm runs/c27bn/fixmatch-50pc-s1-batchnorm
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from strategies import HeldOutPlugin  # noqa: E402  (registers heldout:NAME, as the runs had it)

from vistrain import checkpoint, plugins  # noqa: E402
from vistrain.averaging import batchnorm_from_images  # noqa: E402
from vistrain.data.prepare import prepare_data  # noqa: E402
from vistrain.inference import checkpoint_source, evaluate_checkpoint  # noqa: E402
from vistrain.models.factory import build_from_spec  # noqa: E402


def recomputed(ckpt: dict, images) -> dict:
    """The checkpoint with BatchNorm statistics recomputed over *images* (unaugmented), as ``vistrain average`` does."""
    model = build_from_spec(checkpoint.model_description(ckpt)[0])
    model.load_state_dict(checkpoint.weights(ckpt))
    batchnorm_from_images(model, ckpt, images, torch.device("cpu"))
    return checkpoint.averaged_checkpoint(ckpt, model.state_dict(), ["bn-recomputed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of benchmarks/strategies.py (BatchNorm models)")
    parser.add_argument("--checkpoint", default="best.pt")
    args = parser.parse_args()
    torch.manual_seed(0)
    plugins.register_plugin(HeldOutPlugin(), "benchmark-heldout")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.runs:
            path = run / "checkpoints" / args.checkpoint
            ckpt = checkpoint.load_checkpoint(path)
            data = checkpoint.trained_on(ckpt)
            source, cfg = checkpoint_source(ckpt, None)
            labelled = prepare_data(source, cfg).train
            everything = prepare_data(source, cfg.model_copy(update={"labels_per_class": None})).train
            variants = {"as trained": path}
            for name, images in ((f"labelled ({len(labelled):,})", labelled),
                                 (f"all training ({len(everything):,})", everything)):
                out = Path(tmp) / f"{run.name}-{len(images)}.pt"
                torch.save(recomputed(ckpt, images), out)
                variants[f"recomputed on {name}"] = out
            for name, ck in variants.items():
                val, test = (evaluate_checkpoint(ck, data, split=s, device="cpu")["top1"] for s in ("val", "test"))
                rows.append((run.name, name, val, test))
                print(f"{run.name}  {name:32s} val top-1 {100 * val:6.2f} %   held-out error {100 * (1 - test):5.2f} %",
                      flush=True)
    print("\n| run | BatchNorm statistics | val top-1 | held-out error |\n|---|---|---|---|")
    for run, name, val, test in rows:
        print(f"| {run} | {name} | {100 * val:.2f} % | {100 * (1 - test):.2f} % |")
    for name in dict.fromkeys(r[1] for r in rows):
        errs = [1 - r[3] for r in rows if r[1] == name]
        print(f"mean held-out error, {name}: {100 * sum(errs) / len(errs):.2f} % over {len(errs)} runs")


if __name__ == "__main__":
    main()
