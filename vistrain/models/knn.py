"""k-nearest-neighbour classifier: memorises a reference set and votes among the k closest.

Distances are computed on the model's device in query chunks, so memory stays at
``chunk × references`` floats. It works on raw pixels or on a trained backbone's embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

METRICS = ("l2", "cosine")


class KNNClassifier(nn.Module):
    """Non-parametric: :meth:`fit` stores the references; ``forward`` returns log vote shares per class."""

    nonparametric = True  # trained by memorising, not by gradient descent (see strategies.nonparametric)

    def __init__(self, num_classes: int, k: int = 3, metric: str = "l2", backbone: nn.Module | None = None,
                 chunk_size: int = 1024):
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if metric not in METRICS:
            raise ValueError(f"unknown k-NN metric {metric!r}; use one of {', '.join(METRICS)}")
        self.num_classes, self.k, self.metric, self.chunk_size = num_classes, int(k), metric, int(chunk_size)
        self.backbone = backbone
        self.register_buffer("bank", torch.empty(0, 0))
        self.register_buffer("bank_labels", torch.empty(0, dtype=torch.long))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened features: the backbone's embedding when there is one, else the pixels."""
        if self.backbone is not None:
            x = self.backbone.forward_features(x)
        x = x.flatten(1).float()
        return F.normalize(x, dim=1) if self.metric == "cosine" else x

    forward_features = embed

    @torch.no_grad()
    def fit(self, loader, device: torch.device | str = "cpu") -> int:
        """Memorise every (image, label) of *loader*; returns the number stored."""
        self.eval()
        feats, labels = [], []
        for images, targets in loader:
            feats.append(self.embed(images.to(device)))
            labels.append(torch.as_tensor(targets).to(device))
        if not feats:
            raise ValueError("k-NN needs at least one training image")
        self.bank = torch.cat(feats)
        self.bank_labels = torch.cat(labels).long()
        return len(self.bank_labels)

    def _neighbours(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = min(self.k, len(self.bank))
        if self.metric == "cosine":
            return (q @ self.bank.T).topk(k, dim=1)  # largest similarity first
        # ||q - b||² = ||q||² − 2 q·b + ||b||²; the ||q||² term does not change the ranking.
        d = self.bank.pow(2).sum(1) - 2.0 * (q @ self.bank.T)
        return d.topk(k, dim=1, largest=False)

    @torch.no_grad()
    def votes(self, x: torch.Tensor) -> torch.Tensor:
        """Per-class vote counts for each query; ties go to the class of the nearer neighbours."""
        if len(self.bank) == 0:
            raise RuntimeError("k-NN has no references yet; call fit() first")
        q_all = self.embed(x)
        out = torch.zeros(len(q_all), self.num_classes, device=q_all.device)
        for start in range(0, len(q_all), self.chunk_size):
            q = q_all[start:start + self.chunk_size]
            _dist, idx = self._neighbours(q)
            labels = self.bank_labels[idx]
            k = idx.shape[1]
            # 1 per neighbour plus a rank bonus summing to < 1, so it only ever breaks ties.
            weight = 1.0 + (k - torch.arange(k, device=q.device, dtype=torch.float32)) / (k * k + 1)
            out[start:start + len(q)].scatter_add_(1, labels, weight.expand_as(labels).contiguous())
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.votes(x)
        # Log of smoothed vote shares, so cross-entropy is a finite negative log-likelihood.
        return torch.log((v + 0.01) / (v + 0.01).sum(1, keepdim=True))

    def reset_classifier(self, num_classes: int) -> None:
        """Forget the references (their labels belong to the old classes)."""
        self.num_classes = num_classes
        self.bank = torch.empty(0, 0, device=self.bank.device)
        self.bank_labels = torch.empty(0, dtype=torch.long, device=self.bank.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The reference set's size is only known from the checkpoint: resize before copying.
        for name in ("bank", "bank_labels"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def create_knn(num_classes: int, in_chans: int, input_size: int, *, k: int = 3, metric: str = "l2",
               features: str | None = None, chunk_size: int = 1024, drop_rate: float | None = None,
               drop_path_rate: float | None = None, pretrained: str | None = None) -> KNNClassifier:
    """k-NN on pixels, or on the embeddings of the vistrain checkpoint at *features*.

    With *features* the model carries ``required_input``: the checkpoint's input size and normalisation.
    """
    from vistrain.errors import ConfigError

    if pretrained:
        raise ConfigError("k-NN has no weights to load", hint="use --set model.kwargs.features=CHECKPOINT instead")
    backbone = required = None
    if features:
        from vistrain.models.factory import load_model

        backbone, _ckpt, required = load_model(features)
        if not hasattr(backbone, "forward_features"):
            raise ConfigError(f"the model in {features!r} has no forward_features()",
                              hint="use a checkpoint of a model that exposes its embedding")
        backbone.requires_grad_(False)
    model = KNNClassifier(num_classes, k=int(k), metric=str(metric), backbone=backbone, chunk_size=int(chunk_size))
    model.required_input = required  # drop_rate/drop_path_rate: nothing to drop, accepted and unused
    return model
