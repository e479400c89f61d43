"""Per-layer summary of a model: output shape, parameters, FLOPs, receptive field and jump.

Receptive field follows r_out = r_in + (k−1)·d·j_in and j_out = j_in·s along the data path:
each layer reads the (r, j) of the tensor it receives, so residual branches are tracked too.
After a layer that mixes every position (Linear after Flatten, global pooling) the receptive
field is the whole input. FLOPs come from ``torch.utils.flop_counter`` (a multiply-add is 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

GLOBAL = -1  # receptive field covering the whole input


@dataclass
class LayerInfo:
    """One leaf layer's row in the summary."""

    name: str
    kind: str
    out_shape: tuple[int, ...]
    params: int
    flops: int
    rf: int  # GLOBAL when every output sees the whole input
    jump: int


@dataclass
class Summary:
    """The per-layer rows and totals for one input shape."""

    layers: list[LayerInfo]
    input_shape: tuple[int, ...]
    total_params: int
    trainable_params: int
    total_flops: int


def _pair(v) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


def _rf_step(module: nn.Module, rf: int, jump: int, in_ndim: int, out_ndim: int) -> tuple[int, int]:
    """(r, j) after *module*, given (r, j) of its input."""
    if rf == GLOBAL:
        return GLOBAL, jump
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        k = _pair(module.kernel_size)
        s = _pair(module.stride if module.stride is not None else k)
        d = _pair(getattr(module, "dilation", 1))
        return rf + (k - 1) * d * jump, jump * s
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        size = module.output_size
        return (GLOBAL, jump) if _pair(size if size is not None else 0) == 1 else (rf, jump)
    if in_ndim == 4 and out_ndim < 4 or isinstance(module, nn.Linear) and in_ndim == 2:
        return GLOBAL, jump  # spatial positions are mixed (flatten, global pooling heads, FC)
    return rf, jump


def summarize(model: nn.Module, input_shape: tuple[int, ...]) -> Summary:
    """Run one forward pass of a (1, *input_shape) tensor on *model*'s device and collect the rows.

    Works on the ``meta`` device, so large models are inspected without allocating weights.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros((1, *input_shape), device=device)
    root = type(model).__name__
    names = {m: n for n, m in model.named_modules()}
    rf_of: dict[int, tuple[torch.Tensor, int, int]] = {id(x): (x, 1, 1)}  # tensors kept alive so ids stay unique
    last = [(1, 1)]
    rows: list[tuple[nn.Module, torch.Size, int, int]] = []
    seen: set[nn.Module] = set()

    def hook(module: nn.Module, args, output) -> None:
        if not isinstance(output, torch.Tensor):
            return
        inp = args[0] if args and isinstance(args[0], torch.Tensor) else None
        rf, jump = (rf_of[id(inp)][1:] if inp is not None and id(inp) in rf_of else last[0])
        rf, jump = _rf_step(module, rf, jump, inp.ndim if inp is not None else 4, output.ndim)
        rf_of[id(output)] = (output, rf, jump)
        last[0] = (rf, jump)
        if module not in seen:  # a module called twice is listed once
            seen.add(module)
            rows.append((module, output.shape, rf, jump))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    per_module = counter.get_flop_counts()
    layers = []
    for module, shape, rf, jump in rows:
        name = names.get(module, "?")
        flops = sum(per_module.get(f"{root}.{name}", {}).values())
        params = sum(p.numel() for p in module.parameters(recurse=False))
        layers.append(LayerInfo(name, type(module).__name__, tuple(shape[1:]), params, int(flops), rf, jump))
    return Summary(layers, tuple(input_shape), sum(p.numel() for p in model.parameters()),
                   sum(p.numel() for p in model.parameters() if p.requires_grad), int(counter.get_total_flops()))


def receptive_field(model: nn.Module, input_shape: tuple[int, ...], layer: str) -> tuple[int, int]:
    """(receptive field, jump) at the output of the layer named *layer* (its ``named_modules`` name)."""
    for row in summarize(model, input_shape).layers:
        if row.name == layer:
            return row.rf, row.jump
    raise KeyError(layer)
