"""Which LeNet-5 layer a linear probe should read: logistic regression on each layer's features.

A source checkpoint (LeNet-5 trained on mnist5k) is applied to ``heldout:digits:mnist`` (the same
held-out 20 % as ``benchmarks/strategies.py``); for each of 5 random draws of 10 labelled images per
class from the rest, an L2 logistic regression on standardised features of raw pixels, the first
conv block, the flattened conv features (400), FC120 and FC84 is scored on the held-out digits.

    vistrain run --headless --data mnist5k --epochs 20 --out runs --name s20
    python benchmarks/probe_layers.py runs/s20/checkpoints/best.pt
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from vistrain.data.embedded import load_digits
from vistrain.data.pipeline import InputSpec
from vistrain.data.splits import stratified_split
from vistrain.models.factory import build_from_spec


@torch.no_grad()
def layer_features(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Features of *x* after each LeNet-5 stage, flattened."""
    out = {"pixels": x.flatten(1)}
    h = x
    for i, layer in enumerate(model.features):
        h = layer(h)
        if i == 2:
            out["conv1+pool"] = h.flatten(1)
    out["conv (flattened)"] = h.flatten(1)
    fc = model.pre_logits
    h = fc[2](fc[1](fc[0](h)))
    out["fc120"] = h
    out["fc84"] = fc[4](fc[3](h))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a LeNet-5 vistrain checkpoint trained on mnist5k")
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args()
    ck = torch.load(args.source, map_location="cpu", weights_only=True)
    spec = InputSpec.from_dict(ck["input"])
    model = build_from_spec(ck["model"])
    model.load_state_dict(ck["state_dict"])
    model.eval()
    data = load_digits("mnist", None).train
    images, labels = data.images, np.asarray(data.labels)
    keep, test = stratified_split(labels, 0.2, 1234)  # benchmarks/strategies.py's held-out split

    def inputs(idx):
        x = torch.tensor(images[idx], dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
        return (x - spec.mean[0]) / spec.std[0]

    test_feats = layer_features(model, inputs(test))
    errors: dict[str, list[float]] = {k: [] for k in test_feats}
    for draw in range(args.draws):
        rng = np.random.default_rng(draw)
        train = np.concatenate([rng.choice(keep[labels[keep] == c], 10, replace=False) for c in range(10)])
        feats = layer_features(model, inputs(train))
        for name, f in feats.items():
            scaler = StandardScaler().fit(f.numpy())
            clf = LogisticRegression(max_iter=3000).fit(scaler.transform(f.numpy()), labels[train])
            errors[name].append(1 - clf.score(scaler.transform(test_feats[name].numpy()), labels[test]))
    print(f"{len(test)} held-out digits, {args.draws} draws of 10 labels/class, source {args.source}")
    for name, e in errors.items():
        print(f"  {name:17s} width {test_feats[name].shape[1]:5d}: error {100 * np.mean(e):.2f} % "
              f"(sd {100 * np.std(e):.2f})")


if __name__ == "__main__":
    main()
