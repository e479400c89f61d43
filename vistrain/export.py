"""``vistrain export``: a checkpoint's model as safetensors, TorchScript or ONNX, checked after writing.

Every export is reloaded the way a user would load it (safetensors into the rebuilt model,
``torch.jit.load``, an onnxruntime session) and its outputs are compared with the checkpoint
model's on one batch (val images of the checkpoint's dataset when it can be loaded, else a
seeded random batch). A mismatch beyond the tolerance is an error; the file is kept for inspection.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from vistrain.errors import VistrainError

FORMATS = ("safetensors", "torchscript", "onnx")
SUFFIXES = {"safetensors": ".safetensors", "torchscript": ".torchscript.pt", "onnx": ".onnx"}
ONNX_MODULES = ("onnx", "onnxruntime", "onnxscript")
SAFETENSORS_FORMAT = "vistrain-safetensors"


class ExportError(VistrainError):
    """An export cannot be written, reloaded, or does not match the checkpoint."""


@dataclass
class ExportResult:
    """Where the export went and how closely its outputs match the checkpoint's."""

    path: Path
    format: str
    max_abs_diff: float
    atol: float
    rtol: float
    batch: int
    batch_source: str


def default_path(checkpoint: Path, fmt: str) -> Path:
    """``best.pt`` → ``best.safetensors`` / ``best.torchscript.pt`` / ``best.onnx`` beside it."""
    return checkpoint.with_name(checkpoint.stem + SUFFIXES[fmt])


def sample_batch(ckpt: dict, input_spec, n: int = 8) -> tuple[torch.Tensor, str]:
    """Up to *n* val images of the checkpoint's dataset, normalised; a seeded random batch when unavailable."""
    from vistrain.checkpoint import trained_on
    from vistrain.data.pipeline import ImageTransform
    from vistrain.inference import checkpoint_data

    name = trained_on(ckpt)
    if name:
        try:
            val = checkpoint_data(ckpt)[1].val
            tf = ImageTransform(input_spec)
            k = min(n, len(val))
            return torch.stack([tf(val.image(i)) for i in range(k)]), f"{k} val images of {name}"
        except VistrainError:
            pass
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(n, input_spec.channels, input_spec.size, input_spec.size, generator=gen),
            f"{n} seeded random inputs")


def save_safetensors(model, ckpt: dict, path: Path) -> None:
    """Weights plus the model spec, input spec and class names in the header's metadata."""
    from safetensors.torch import save_file

    from vistrain.checkpoint import model_description

    spec, input_spec, classes = model_description(ckpt)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"format": SAFETENSORS_FORMAT, "model": json.dumps(spec), "input": json.dumps(input_spec),
            "classes": json.dumps(classes)}
    save_file(state, str(path), metadata=meta)


def load_safetensors(path: str | Path):
    """Rebuild the model from a file written by :func:`save_safetensors`; returns (model, metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from vistrain.models.factory import build_from_spec

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != SAFETENSORS_FORMAT:
        raise ExportError(f"{path} was not written by vistrain export (no model description in its metadata)")
    model = build_from_spec(json.loads(meta["model"]))
    model.load_state_dict(load_file(str(path)))
    return model.eval(), {k: json.loads(v) for k, v in meta.items() if k != "format"}


def _torchscript(model, x: torch.Tensor, path: Path) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks torch.jit deprecated; the format is still what many runtimes load
        traced = torch.jit.trace(model, x)
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return loaded(x)


def require_onnx() -> None:
    """Raise a one-line ExportError unless the ``onnx`` extra's modules are importable."""
    missing = [m for m in ONNX_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                          "not installed", hint="pip install 'vistrain[onnx]'")


def _onnx(model, x: torch.Tensor, path: Path) -> torch.Tensor:
    import onnxruntime as ort

    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        # one self-contained file unless the weights pass protobuf's 2 GB limit
        big = sum(p.numel() * p.element_size() for p in model.parameters()) > 1.5 * 2**30
        torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: batch},), dynamo=True, verbose=False, external_data=big)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def export_checkpoint(checkpoint: str | Path, fmt: str, out: str | Path | None = None, *, batch: int = 8,
                      atol: float = 1e-4, rtol: float = 1e-4) -> ExportResult:
    """Write *checkpoint*'s model in *fmt*, reload it and check its outputs on a batch."""
    from vistrain.checkpoint import model_description
    from vistrain.models.factory import load_model

    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}", hint="use " + ", ".join(FORMATS))
    if fmt == "onnx":
        require_onnx()
    checkpoint = Path(checkpoint)
    model, ckpt, input_spec = load_model(checkpoint, "cpu")
    path = Path(out).expanduser() if out else default_path(checkpoint, fmt)
    x, source = sample_batch(ckpt, input_spec, batch)
    with torch.no_grad():
        expected = model(x).float()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "safetensors":
            save_safetensors(model, ckpt, path)
            reloaded, _ = load_safetensors(path)
            with torch.no_grad():
                got = reloaded(x)
        elif fmt == "torchscript":
            got = _torchscript(model, x, path)
        else:
            got = _onnx(model, x, path)
    except (OSError, ExportError) as exc:
        raise ExportError(f"cannot export {checkpoint} to {fmt} at {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - tracers raise many types; name the model and the format
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ExportError(f"{model_description(ckpt)[0]['name']} could not be exported to {fmt}: {type(exc).__name__}: {first}",
                          hint="try another --format") from None
    got = got.float()
    diff = float((got - expected).abs().max()) if got.shape == expected.shape else float("inf")
    if not (got.shape == expected.shape and torch.allclose(got, expected, atol=atol, rtol=rtol)):
        raise ExportError(f"the {fmt} export at {path} differs from the checkpoint's outputs by up to {diff:.3g} "
                          f"(tolerance atol {atol:g} + rtol {rtol:g}); the file was kept for inspection")
    return ExportResult(path, fmt, diff, atol, rtol, int(x.shape[0]), source)
