"""``timm:<name>``: any timm model, with weights from a local file or (only when asked) the hub."""

from __future__ import annotations

from torch import nn

from vistrain.errors import CheckpointError, ConfigError

OFFLINE_HINT = ("download the weights where you are online (e.g. model.safetensors from huggingface.co/timm/NAME) "
                "and pass --pretrained PATH")


def create_timm(num_classes: int, in_chans: int, input_size: int, *, arg: str | None = None,
                pretrained: str | None = None, drop_rate: float | None = None,
                drop_path_rate: float | None = None, **kwargs) -> nn.Module:
    """Build timm model *arg*; ``pretrained`` is a .safetensors/.pth path, or ``hub`` to download (opt-in)."""
    import timm

    if not arg:
        raise ConfigError("timm: needs a model name, e.g. timm:resnet18", hint="run 'vistrain models list timm:*res*'")
    if not timm.is_model(arg):
        from vistrain.errors import suggest

        raise ConfigError(f"timm has no model {arg!r}.{suggest(arg, timm.list_models())}",
                          hint="run 'vistrain models list timm:PATTERN'")
    extra = dict(kwargs)
    if drop_rate is not None:
        extra["drop_rate"] = drop_rate
    if drop_path_rate is not None:
        extra["drop_path_rate"] = drop_path_rate
    if pretrained == "hub":
        try:
            return timm.create_model(arg, pretrained=True, num_classes=num_classes, in_chans=in_chans, **extra)
        except Exception as exc:  # noqa: BLE001 - offline, missing cache, gated repo: all end the same way
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CheckpointError(f"could not fetch pretrained weights for timm:{arg}: {first[:160]}",
                                  hint=OFFLINE_HINT.replace("NAME", arg)) from None
    model = timm.create_model(arg, pretrained=False, num_classes=num_classes, in_chans=in_chans, **extra)
    if pretrained:
        from vistrain.models.weights import load_pretrained

        load_pretrained(model, pretrained)
    return model


def list_timm(pattern: str | None) -> list[str]:
    """timm model names matching a wildcard (a bare word matches as a substring)."""
    import timm

    pattern = (pattern or "*").removeprefix("timm:")
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    return timm.list_models(pattern)
