"""The one typed configuration model, with every default in one place.

Resolution order: defaults → optional YAML file → CLI flags → ``--set a.b=c`` overrides.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vistrain.errors import ConfigError, suggest


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    """Which network to build and how."""

    name: str = "lenet5"
    pretrained: str | None = None  # path to .safetensors/.pth, or "hub" to download (opt-in)
    in_chans: int | None = Field(None, ge=1, description="override the model's default channels")
    input_size: int | None = Field(None, ge=1, description="override the input size")
    drop_rate: float | None = Field(None, ge=0.0, le=1.0)
    drop_path_rate: float | None = Field(None, ge=0.0, le=1.0)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class DataConfig(_Section):
    """Dataset, split and loading."""

    name: str = "mnist5k"
    root: str = "~/.cache/vistrain/data"
    download: bool = False
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="share of the labelled pool used to choose best.pt")
    test_fraction: float = Field(
        0.2, ge=0.0, lt=1.0,
        description="share of the labelled pool held out as a test split, never trained on or used to choose "
                    "best.pt (datasets with their own test split keep theirs); 0 for none")
    split_seed: int = 0
    labels_per_class: int | None = Field(None, ge=1)
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    num_workers: int | Literal["auto"] = "auto"
    worker_start: Literal["auto", "fork", "forkserver", "spawn"] = Field(
        "auto", description="how loader workers start: auto is fork on Linux with Python 3.12+, forkserver on "
                            "Linux before 3.12 (a fork beside other threads can hang there), else the platform's "
                            "default; fork shares an in-memory dataset with the workers instead of copying it")
    device_augment: bool | Literal["auto"] = Field(
        "auto", description="augment in-memory batches with tensor ops on the training device (auto: when every op has one)")
    unlabelled: str | None = Field(
        None, description="a dataset spec whose images join the unlabelled pool of pseudo-label and noisy-student "
                          "(images:DIR for a folder without classes; a labelled source's labels are ignored)")
    resize: Literal["auto", "squash", "crop"] = Field(
        "auto", description="how images reach the input size: squash (the whole image resized), crop (aspect ratio "
                            "kept: random resized crop in training, shorter side to size/crop_pct and a centre crop "
                            "to evaluate); auto: crop for photos, squash for datasets of one small image size")
    crop_pct: float = Field(0.875, gt=0.0, le=1.0, description="crop geometry: the centre crop's share of the "
                                                                "shorter side when evaluating")
    sampler: Literal["shuffle", "balanced"] = Field(
        "shuffle", description="the training order: shuffle (every image once per epoch), or balanced (drawn with "
                               "replacement, each class equally often: for imbalanced classes)")
    max_bad_fraction: float = Field(0.05, ge=0.0, le=1.0, description="share of an epoch's images that may be "
                                    "unreadable (skipped and reported) before the run stops")
    image_column: str = Field("image", description="hf: sources: the column holding the images")
    label_column: str = Field("label", description="hf: sources: the column holding the class labels")
    shapes_size: int = Field(32, ge=8, description="image size of the synthetic shapes dataset")
    shapes_count: int = Field(2000, ge=10, description="labelled images of the shapes dataset")

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(f"val_fraction ({self.val_fraction:g}) + test_fraction ({self.test_fraction:g}) "
                             "must be below 1 so that images are left to train on")
        return self


class AugmentConfig(_Section):
    """Per-image and batch-level augmentation."""

    # auto: the dataset's recipe (vistrain.data.recipes): digits get a mild affine jitter, small images a padded
    # crop and flip, photos a random resized crop and flip
    spec: str = "auto"  # spec string, "none", "auto", or a policy/pipeline YAML
    cutmix_alpha: float = Field(0.0, ge=0.0)
    cutmix_prob: float = Field(0.5, ge=0.0, le=1.0)
    mixup_alpha: float = Field(0.0, ge=0.0)
    mixup_prob: float = Field(0.5, ge=0.0, le=1.0)


class OptimConfig(_Section):
    """Optimizer (from the optimizer registry)."""

    name: str = "adamw"
    lr: float = Field(8e-3, gt=0.0)
    weight_decay: float = Field(5e-4, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    betas: tuple[float, float] = (0.9, 0.999)


class SchedConfig(_Section):
    """Learning-rate schedule (from the scheduler registry), stepped every optimizer step."""

    name: str = "onecycle"
    warmup_fraction: float = Field(0.25, ge=0.0, lt=1.0)
    step_epochs: int = Field(10, ge=1)
    gamma: float = Field(0.1, gt=0.0)
    min_lr_ratio: float = Field(0.0, ge=0.0)


AMP_MODES = ("auto", "off", "on", "bf16", "fp16")


class TrainConfig(_Section):
    """The training loop."""

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_switch(cls, value: Any) -> Any:
        """``true``/``false`` (booleans or their spellings) mean on/off, as before the modes existed."""
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return "on" if value.lower() in ("true", "yes", "1") else "off"
        return value

    epochs: int = Field(60, ge=1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: Literal[AMP_MODES] = Field(
        "auto", description="mixed precision: auto (on for CUDA), off, on (bf16 where the device has it, else fp16), "
                            "bf16, or fp16 (with a gradient scaler, saved in checkpoints)")
    channels_last: bool = Field(False, description="channels-last memory format for the model and its inputs")
    test_tta: Literal["none", "flip", "crops", "crops-flip"] = Field(
        "none", description="test-time augmentation of the test-split evaluation at the end of the run (vistrain eval --tta)")
    accum_steps: int = Field(1, ge=1, description="gradient accumulation: loader batches per optimizer step "
                                                 "(the effective batch is batch_size x accum_steps x processes)")
    ema_decay: float | None = Field(None, gt=0.0, lt=1.0, description="exponential moving average of the weights "
                                    "(e.g. 0.999): validated, kept in best.pt and used by eval; unset: off")
    ema_warmup: bool = Field(True, description="timm's EMA warm-up: the decay grows from 0 to ema_decay")
    compile: bool = Field(False, description="torch.compile the model (the first steps compile; needs a C compiler on CPU)")
    class_weights: Literal["none", "auto", "inverse", "effective"] | list[float] = Field(
        "none", description="weight the cross-entropy per class: auto or inverse (n / (classes x n_c)), effective "
                            "(Cui et al. 2019's effective number of samples, see class_weights_beta), a list of one "
                            "weight per class, or none")
    class_weights_beta: float = Field(0.999, ge=0.0, lt=1.0, description="beta of class_weights=effective")
    seed: int = 0
    deterministic: bool = False
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    grad_clip: float | None = Field(None, gt=0.0)
    log_interval: int = Field(10, ge=1, description="steps between batch events")
    eval_every: int = Field(1, ge=1, description="epochs between evaluations")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; default: torch's")


BEST_RULES = ("1se", "max", "last")  # checkpoint.best: how an epoch becomes best.pt (engine.loop.update_best)


class CheckpointConfig(_Section):
    """Checkpoints between epochs, for preemptible jobs; ``last.pt`` and ``best.pt`` are written every epoch."""

    best: Literal[BEST_RULES] = Field(
        "1se", description="which epoch becomes best.pt: 1se, the latest within one standard error of the highest "
                           "val top-1 (see docs/running.md, 'Which epoch is best.pt'); max, the highest; last, the final one")

    every_steps: int | None = Field(None, ge=1, description="write step-N.pt every N optimizer steps")
    every_minutes: float | None = Field(30.0, gt=0.0, description="write step-N.pt at least this often")
    keep: int = Field(3, ge=1, description="step checkpoints kept (the newest)")
    average_last: int | None = Field(
        None, ge=2, description="average the weights of each stage's last K epochs (kept as epoch-N.pt), with "
                                "BatchNorm statistics recomputed: written as averaged.pt, validated, and best.pt when "
                                "the best rule picks it as the stage's final point; unset: off")


class StrategyConfig(_Section):
    """The training strategy (from the strategy registry) and its own parameters."""

    name: str = "supervised"
    params: dict[str, Any] = Field(default_factory=dict)


class OutputConfig(_Section):
    """Where the run folder goes and how the run reports."""

    dir: str = "runs"
    name: str | None = None  # default: <model>-<dataset>-<timestamp>
    system_interval_s: float = Field(2.0, gt=0.0)
    dashboard_refresh_s: float = Field(
        2.0, gt=0.0, description="seconds between the dashboard's redraws of its progress and system panels (the curves "
                                 "every other time); each redraw takes CPU from training (see benchmarks/README.md, 'Dashboard overhead')")
    dashboard_nice: int = Field(
        10, ge=0, le=19, description="niceness added to the dashboard process (0 keeps the terminal's): the "
                                     "scheduler then gives training the cores first and draws in the gaps; keys still "
                                     "answer at once (see benchmarks/README.md, 'Dashboard overhead')")
    keep_last: bool = True


class Config(_Section):
    """The whole resolved configuration of a run."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    sched: SchedConfig = Field(default_factory=SchedConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    def to_yaml(self) -> str:
        """The config as YAML, in field order."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --- loading ----------------------------------------------------------------------------


def _fields_at(path: tuple[Any, ...]) -> list[str]:
    """Field names valid at *path* in the config tree (for 'did you mean')."""
    model: Any = Config
    for part in path:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))


def _format_validation_error(exc: ValidationError, source: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            hint = suggest(str(loc[-1]), _fields_at(loc[:-1]))
            lines.append(f"unknown config key '{key}'.{hint}")
        else:
            got = err.get("input")
            got_text = f" (got {got!r})" if not isinstance(got, dict) else ""
            lines.append(f"config key '{key}': {err['msg'].lower()}{got_text}")
    more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
    return ConfigError(f"{source}: {lines[0]}{more}", hint="see 'vistrain config show' for every key")


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """Read any YAML document with ``yaml.safe_load``; errors name *what*, the file and the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} not found", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML in {str(path)!r} at{where}: {problem}", hint="fix the YAML syntax") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config sections (see :func:`read_yaml` for the errors)."""
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r} must hold a mapping of config sections, not {type(data).__name__}")
    return data


def parse_set(item: str) -> tuple[list[str], Any]:
    """Parse ``a.b=c`` into (["a", "b"], value), the value read as a YAML scalar."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r} is not KEY=VALUE", hint="for example --set train.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return [p for p in key.strip().split(".")], value


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Merge *update* into a copy of *base*, recursing into mappings."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class ConfigLayers:
    """What the user gave, read once: the YAML file's mapping, then each flag typed and each ``--set`` as a
    (key path, value) in order, before defaults or a resumed run's saved config are put under them."""

    file: dict[str, Any]
    settings: tuple[tuple[tuple[str, ...], Any], ...] = ()
    source: str = "config"  # names the input in errors


def config_layers(config_file: str | Path | None = None, flags: dict[str, Any] | None = None,
                  overrides: list[str] | None = None) -> ConfigLayers:
    """Read the YAML file, the CLI flags the user typed (dotted keys; None means not typed) and --set."""
    file = load_yaml(config_file) if config_file is not None else {}
    settings = [(tuple(key.split(".")), value) for key, value in (flags or {}).items() if value is not None]
    settings += [(tuple(path), value) for path, value in map(parse_set, overrides or [])]
    return ConfigLayers(file, tuple(settings), str(config_file) if config_file is not None else "config")


def build_config(layers: ConfigLayers, base: dict[str, Any] | None = None) -> Config:
    """The typed config: defaults (or *base*, a resumed run's saved config), then the file, then each setting."""
    data = deep_merge(copy.deepcopy(base or {}), layers.file)  # the settings below write into nested dicts
    for path, value in layers.settings:
        _set_path(data, list(path), value)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _format_validation_error(exc, layers.source) from None


def resolve_config(
    config_file: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """Build the config: defaults (or *base*, a resumed run's saved config), then the YAML file,
    then the CLI flags the user typed (dotted keys; None means not typed), then --set."""
    return build_config(config_layers(config_file, flags, overrides), base)
