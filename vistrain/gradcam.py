"""Grad-CAM (Selvaraju et al., 2017): where in the image the evidence for a class lies.

A forward hook keeps one layer's feature maps A (N, C, h, w); the gradient of the class score
with respect to them, averaged over h×w, weights each channel; ReLU(Σ_c w_c A_c) upsampled to
the input is the heat map. The default layer is the model's last ``Conv2d`` with a map larger than
1×1 (a conv after global pooling has no "where"), taken with the
normalisation and activation that follow it at the same resolution (its rectified output, as in
the paper), for built-in CNNs and timm CNNs alike; any layer with an (N, C, H, W) output can be
named instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vistrain.errors import ConfigError, UnknownNameError, suggest


@dataclass
class CamResult:
    """Heat maps in [0, 1] at input resolution, the class each explains, and the softmax."""

    heatmaps: np.ndarray  # (N, H, W) float32
    classes: list[int]
    probs: np.ndarray  # (N, num_classes)
    layer: str


@torch.no_grad()
def default_layer(model: torch.nn.Module, x: torch.Tensor) -> str:
    """The last Conv2d to run, extended over the leaf modules right after it that keep its shape (BN, ReLU; not pooling)."""
    leaves = {m: name for name, m in model.named_modules() if name and not any(True for _ in m.children())}
    calls: list[tuple[str, torch.nn.Module, tuple]] = []
    handles = [m.register_forward_hook(
        lambda mod, _i, out: calls.append((leaves[mod], mod, tuple(out.shape) if torch.is_tensor(out) else ())))
        for m in leaves]
    try:
        model.eval()
        model(x[:1])
    finally:
        for h in handles:
            h.remove()
    conv_at = [i for i, (_, mod, shape) in enumerate(calls) if isinstance(mod, torch.nn.Conv2d) and len(shape) == 4]
    if not conv_at:
        raise ConfigError(f"{type(model).__name__} has no Conv2d layer, so Grad-CAM has no feature map to use",
                          hint="pass --layer NAME of a layer with an (N, C, H, W) output, or use a CNN")
    spatial = [i for i in conv_at if calls[i][2][2] * calls[i][2][3] > 1]  # a 1x1 map (after pooling) has no "where"
    i = (spatial or conv_at)[-1]
    shape = calls[i][2][1:]
    while i + 1 < len(calls) and calls[i + 1][2][1:] == shape and "pool" not in type(calls[i + 1][1]).__name__.lower():
        i += 1
    return calls[i][0]


def find_layer(model: torch.nn.Module, name: str) -> tuple[str, torch.nn.Module]:
    """The named module; unknown names suggest close ones."""
    modules = dict(model.named_modules())
    if name not in modules or not name:
        raise UnknownNameError(f"no layer named {name!r} in {type(model).__name__}." + suggest(name, [n for n in modules if n]),
                               hint="see the names with: vistrain models info MODEL")
    return name, modules[name]


def grad_cam(model: torch.nn.Module, x: torch.Tensor, layer: str | None = None,
             target: int | None = None) -> CamResult:
    """Grad-CAM of *model* on the batch *x* for class *target* (default: each image's predicted class)."""
    name, module = find_layer(model, layer if layer is not None else default_layer(model, x))
    store: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        store["a"] = output[0] if isinstance(output, (tuple, list)) else output

    handle = module.register_forward_hook(keep)
    try:
        model.eval()
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)  # so even a layer without weights before it has a gradient
            logits = model(x)
            act = store.get("a")
            if act is None or act.dim() != 4:
                shape = "nothing" if act is None else tuple(act.shape)
                raise ConfigError(f"layer {name!r} outputs {shape}, not an (N, C, H, W) feature map",
                                  hint="choose a convolutional layer with --layer")
            n_classes = logits.shape[1]
            if target is not None and not 0 <= target < n_classes:
                raise ConfigError(f"class index {target} is out of range for a {n_classes}-class model")
            cls = logits.argmax(1) if target is None else torch.full((x.shape[0],), target, dtype=torch.long)
            score = logits.gather(1, cls[:, None].to(logits.device)).sum()
            (grads,) = torch.autograd.grad(score, act)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act.detach()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12)[:, None, None]
    cam = (cam / peak).cpu().numpy().astype(np.float32)
    probs = torch.softmax(logits.detach().float(), dim=1).cpu().numpy()
    return CamResult(cam, [int(c) for c in cls.tolist()], probs, name)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The heat map (jet colours) blended over a uint8 HWC image of the same height and width; RGB out."""
    import cv2

    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]
    heat = cv2.applyColorMap(np.clip(heatmap * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    return (rgb.astype(np.float32) * (1 - alpha) + heat.astype(np.float32) * alpha).astype(np.uint8)
