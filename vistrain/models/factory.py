"""Build a model from the registry and decide the input it expects."""

from __future__ import annotations

from typing import Any, NamedTuple

from vistrain.data.pipeline import InputSpec
from vistrain.errors import ConfigError, PluginError
from vistrain.registry import Entry

IMAGENET_NORM = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def _norm(meta: dict[str, Any], channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean = tuple(meta.get("mean", (0.5,) * channels))
    std = tuple(meta.get("std", (0.5,) * channels))
    if len(mean) != channels:  # e.g. an RGB model fed grayscale: average the statistics
        mean = (sum(mean) / len(mean),) * channels
        std = (sum(std) / len(std),) * channels
    return mean, std


def resolve_input(entry: Entry, model_cfg, native_size: tuple[int, int] | None, native_channels: int,
                  geometry: tuple[str, float] = ("squash", 0.875)) -> InputSpec:
    """Channels and size the pipeline must produce for this model.

    Channels: ``model.in_chans`` if set, else the model's declared default (or the data's when
    the model declares none). Size: ``model.input_size`` if set; else the data's native size when
    the model accepts it (``min_size``..``max_size``); else the model's declared ``input_size``.
    *geometry* is the data's (resize mode, crop_pct): how an image of another size reaches it.
    """
    meta = entry.meta
    channels = model_cfg.in_chans or int(meta.get("in_chans") or native_channels or 3)
    if model_cfg.input_size:
        size = int(model_cfg.input_size)
    else:
        default = int(meta.get("input_size") or (native_size[0] if native_size else 224))
        lo, hi = _size_range(meta, default)
        native = native_size[0] if native_size and native_size[0] == native_size[1] else None
        size = native if native is not None and lo <= native <= hi else default
    mean, std = _norm(meta, channels)
    return InputSpec(channels, size, mean, std, *geometry)


def _size_range(meta: dict, default: int) -> tuple[int, int]:
    """The sizes a model accepts natively (``min_size``..``max_size``), else just its *default*."""
    return int(meta.get("min_size", default)), int(meta.get("max_size", default))


def upscale_warning(model_cfg, native_size: tuple[int, int] | None, input_spec: InputSpec) -> str | None:
    """A warning when :func:`resolve_input` fell back to a default input 4x the data's side or more (VGG's
    224 px for 8x8 digits), naming the smallest ``model.input_size`` the model accepts; else None."""
    side = max(native_size) if native_size else None
    size = input_spec.size
    if not side or model_cfg.input_size or model_cfg.pretrained or size < 4 * side:
        return None
    from vistrain.plugins import registry

    entry, _arg = registry("model").get(model_cfg.name)
    smallest, _ = _size_range(entry.meta, size)
    return (f"{model_cfg.name} trains at {size}x{size} px, its default: the {side}x{side} images are upscaled "
            f"{size / side:.0f}x, so each step costs about {(size / side) ** 2:.0f}x the compute; "
            f"--set model.input_size={max(smallest, side)} is the smallest it accepts")


def model_spec(entry_name: str, num_classes: int, input_spec: InputSpec, model_cfg) -> dict[str, Any]:
    """The checkpointed recipe for rebuilding the model."""
    kwargs = dict(model_cfg.kwargs)
    if model_cfg.drop_rate is not None:
        kwargs["drop_rate"] = model_cfg.drop_rate
    if model_cfg.drop_path_rate is not None:
        kwargs["drop_path_rate"] = model_cfg.drop_path_rate
    return {"name": entry_name, "num_classes": int(num_classes), "in_chans": input_spec.channels,
            "input_size": input_spec.size, "kwargs": kwargs}


def build_from_spec(spec: dict[str, Any], pretrained: str | None = None):
    """Instantiate a model from a spec dict (as stored in checkpoints)."""
    from vistrain.plugins import registry

    entry, arg = registry("model").get(spec["name"])
    factory = entry.load()
    kwargs = dict(spec.get("kwargs") or {})
    if arg is not None:
        kwargs["arg"] = arg
    if pretrained:
        kwargs["pretrained"] = pretrained
    try:
        return factory(spec["num_classes"], spec["in_chans"], spec["input_size"], **kwargs)
    except (ConfigError, PluginError):
        raise
    except TypeError as exc:
        raise ConfigError(f"model {spec['name']!r} rejected its arguments: {exc}", hint="check model.kwargs") from None
    except ValueError as exc:
        hint = ("set --set model.input_size=N to a size it accepts" if "input" in str(exc)
                else "check model.kwargs (see 'vistrain models info NAME')")
        raise ConfigError(f"model {spec['name']!r}: {exc}", hint=hint) from None


def create_model(model_cfg, num_classes: int, native_size: tuple[int, int] | None, native_channels: int,
                 geometry: tuple[str, float] = ("squash", 0.875)):
    """Build the configured model; returns (model, model_spec, input_spec). *geometry*: see :func:`resolve_input`."""
    from vistrain.plugins import registry

    entry, _arg = registry("model").get(model_cfg.name)
    input_spec = resolve_input(entry, model_cfg, native_size, native_channels, geometry)
    spec = model_spec(model_cfg.name, num_classes, input_spec, model_cfg)
    model = build_from_spec(spec, pretrained=model_cfg.pretrained)
    required = getattr(model, "required_input", None)
    if required is not None:  # e.g. k-NN on a checkpoint's features: that backbone's input wins
        input_spec = required
        spec.update(in_chans=required.channels, input_size=required.size)
    return model, spec, input_spec


class LoadedModel(NamedTuple):
    """A checkpoint's model, ready to predict: in eval mode with its weights, the checkpoint it came from and
    the input it expects."""

    model: Any
    checkpoint: dict
    input_spec: InputSpec


def load_model(source, device: Any = "cpu", *, what: str = "checkpoint") -> LoadedModel:
    """The one way from a checkpoint to a model: rebuilt from the checkpoint's model spec, its weights loaded
    strictly, in eval mode on *device*. *source* is a checkpoint path or an already loaded checkpoint dict;
    *what* names it in errors (``teacher checkpoint``, ``transfer source``)."""
    from vistrain import checkpoint
    from vistrain.errors import CheckpointError

    ckpt = source if isinstance(source, dict) else checkpoint.load_checkpoint(source)
    where = what if isinstance(source, dict) else f"{what} {str(source)!r}"
    spec, input_dict, _classes = checkpoint.model_description(ckpt, where)
    model = build_from_spec(spec)
    try:
        model.load_state_dict(checkpoint.weights(ckpt))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{where} does not match model {spec['name']!r}: {first}",
                              hint="the weights come from a different architecture or class count") from None
    model.to(device).eval()
    # the calibrated temperature (vistrain calibrate): probabilities made from this model divide the logits by it
    model.vistrain_temperature = checkpoint.temperature(ckpt)
    return LoadedModel(model, ckpt, InputSpec.from_dict(input_dict))
