"""Distillation losses: the logit losses of the ``distill_loss`` registry and the feature losses.

A logit loss is registered with ``register_distill_losses``: ``factory(**loss_kwargs)`` returns
``loss(student_logits, teacher_logits, targets, temperature) -> tensor``, the teacher term before
the strategy weighs it against the labels' cross-entropy. *targets* are class indices or, after
label smoothing or mixing, a distribution over the classes. Built in:

- ``kd``: Hinton et al. (2015), T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)).
- ``dkd``: Zhao et al. (2022), decoupled KD: α·TCKD + β·NCKD, the target class's binary KL and the
  KL between the non-target classes' distributions, each × T².
- ``dist``: Huang et al. (2022), 1 − Pearson correlation between the softened predictions, across
  the classes of each image (inter-class) and across the images of each class (intra-class), × T².

Feature losses read a layer of each model through forward hooks (:class:`FeatureTap`):

- ``fitnet`` (Romero et al. 2015): mean squared error between the teacher's features and the
  student's, mapped by a learned adapter (a 1×1 convolution with BatchNorm between feature maps, a
  linear layer otherwise); maps of another size are pooled or interpolated to the teacher's.
- ``at`` (Zagoruyko & Komodakis 2017): attention transfer, the squared distance between the
  L2-normalised spatial attention maps (channel mean of the squared activations).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vistrain.errors import ConfigError

LogitLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


def hard_targets(targets: torch.Tensor) -> torch.Tensor:
    """Class indices of *targets* (a distribution's most likely class)."""
    return targets.argmax(dim=1) if targets.ndim == 2 else targets.long()


# --- logit losses -----------------------------------------------------------------------------


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)), averaged over the batch."""
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits.float() / t, dim=1)
    p_t = F.softmax(teacher_logits.float() / t, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="batchmean") * t * t


def dkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor, temperature: float,
             alpha: float = 1.0, beta: float = 8.0) -> torch.Tensor:
    """Decoupled KD (Zhao et al. 2022): α·TCKD + β·NCKD.

    TCKD is the KL between the binary distributions (target class, all others) of teacher and student;
    NCKD the KL between their distributions over the non-target classes alone; both softened by T and × T².
    """
    t = float(temperature)
    zs, zt = student_logits.float() / t, teacher_logits.float() / t
    gt = F.one_hot(hard_targets(targets), zs.shape[1]).bool()
    p_s, p_t = F.softmax(zs, dim=1), F.softmax(zt, dim=1)
    b_s = torch.stack([(p_s * gt).sum(1), (p_s * ~gt).sum(1)], dim=1).clamp_min(1e-12)
    b_t = torch.stack([(p_t * gt).sum(1), (p_t * ~gt).sum(1)], dim=1).clamp_min(1e-12)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(1).mean() * t * t
    # the non-target classes' own softmax: the target's logit removed
    masked = torch.finfo(zs.dtype).min
    log_q_s = F.log_softmax(zs.masked_fill(gt, masked), dim=1)
    q_t = F.softmax(zt.masked_fill(gt, masked), dim=1)
    nckd = (q_t * (q_t.clamp_min(1e-12).log() - log_q_s)).masked_fill(gt, 0.0).sum(1).mean() * t * t
    return alpha * tckd + beta * nckd


def pearson_rows(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation between the rows of *a* and of *b*."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
              beta: float = 1.0, gamma: float = 1.0) -> torch.Tensor:
    """DIST (Huang et al. 2022): β·inter-class + γ·intra-class relation loss, each T²·(1 − mean Pearson r)."""
    t = float(temperature)
    y_s = F.softmax(student_logits.float() / t, dim=1)
    y_t = F.softmax(teacher_logits.float() / t, dim=1)
    inter = 1.0 - pearson_rows(y_s, y_t).mean()
    intra = 1.0 - pearson_rows(y_s.t(), y_t.t()).mean()
    return t * t * (beta * inter + gamma * intra)


def make_kd() -> LogitLoss:
    """Hinton's KD term."""
    return lambda s, t, y, temperature: kd_loss(s, t, temperature)


def make_dkd(alpha: float = 1.0, beta: float = 8.0) -> LogitLoss:
    """Decoupled KD with weights α (target class) and β (non-target classes); the paper's CIFAR setting: 1 and 8."""
    return lambda s, t, y, temperature: dkd_loss(s, t, y, temperature, alpha, beta)


def make_dist(beta: float = 1.0, gamma: float = 1.0) -> LogitLoss:
    """DIST with weights β (inter-class) and γ (intra-class)."""
    return lambda s, t, y, temperature: dist_loss(s, t, temperature, beta, gamma)


def logit_loss(name: str, kwargs: dict) -> LogitLoss:
    """The registered logit loss *name* built with *kwargs*; a wrong name or argument is one line."""
    from vistrain.plugins import registry

    entry = registry("distill_loss").entry(name)
    try:
        return entry.load()(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"distillation loss {name!r} does not take {sorted(kwargs)}: {exc}",
                          hint="see 'vistrain strategies list' and docs/strategies.md for its arguments") from None


# --- feature losses ---------------------------------------------------------------------------


def last_linear(model: nn.Module) -> str:
    """Name of *model*'s last ``nn.Linear`` (its classifier, in the models vistrain builds)."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ConfigError(f"{type(model).__name__} has no linear classifier to read features before",
                          hint="name a layer with strategy.params.student_layer / teacher_layer")
    return names[-1]


class FeatureTap:
    """Keeps what one layer of a model computes in each forward pass.

    *layer* names a module (``model.named_modules()``); its output is kept. Empty: the input of the
    model's last linear layer, i.e. the features its classifier sees.
    """

    def __init__(self, model: nn.Module, layer: str | None, role: str):
        modules = dict(model.named_modules())
        self.features: torch.Tensor | None = None
        if layer:
            if layer not in modules or layer == "":
                from vistrain.errors import suggest

                names = [n for n in modules if n]
                raise ConfigError(f"the {role} ({type(model).__name__}) has no layer {layer!r}.{suggest(layer, names)}",
                                  hint=f"its layers: {', '.join(names[:40])}{' ...' if len(names) > 40 else ''}")
            self.name = layer
            self.handle = modules[layer].register_forward_hook(self._output)
        else:
            self.name = f"input of {last_linear(model)}"
            self.handle = modules[last_linear(model)].register_forward_pre_hook(self._input)

    def _output(self, module, args, output) -> None:
        self.features = output if isinstance(output, torch.Tensor) else output[0]

    def _input(self, module, args) -> None:
        self.features = args[0]

    def remove(self) -> None:
        self.handle.remove()


def attention_map(features: torch.Tensor) -> torch.Tensor:
    """Zagoruyko & Komodakis: the channel mean of the squared activations, flattened and L2-normalised."""
    return F.normalize(features.float().pow(2).mean(dim=1).flatten(1), dim=1)


def match_size(features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A feature map resized to *size*: average-pooled when larger, bilinear when smaller."""
    if tuple(features.shape[-2:]) == tuple(size):
        return features
    if features.shape[-2] >= size[0] and features.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(features, size)
    return F.interpolate(features, size=size, mode="bilinear", align_corners=False)


def at_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Attention transfer between two feature maps (N, C, H, W); the student's map is resized to the teacher's."""
    if student.ndim != 4 or teacher.ndim != 4:
        raise ConfigError(f"attention transfer needs feature maps (N, C, H, W) from both layers; got "
                          f"{tuple(student.shape)} and {tuple(teacher.shape)}",
                          hint="choose convolutional layers with strategy.params.student_layer / teacher_layer")
    return (attention_map(match_size(student, teacher.shape[-2:])) - attention_map(teacher)).pow(2).mean()


class FeatureAdapter(nn.Module):
    """FitNets' regressor from the student's features to the teacher's: a 1×1 convolution with BatchNorm
    between feature maps (the student's resized to the teacher's size), a linear layer otherwise."""

    def __init__(self, student_shape: tuple[int, ...], teacher_shape: tuple[int, ...]):
        super().__init__()
        self.maps = len(student_shape) == 4 and len(teacher_shape) == 4
        self.size = tuple(teacher_shape[-2:]) if self.maps else None
        if self.maps:
            self.proj = nn.Sequential(nn.Conv2d(student_shape[1], teacher_shape[1], 1, bias=False),
                                      nn.BatchNorm2d(teacher_shape[1]))
        else:
            width = lambda shape: int(torch.Size(shape[1:]).numel())  # noqa: E731
            self.proj = nn.Linear(width(student_shape), width(teacher_shape))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.maps:
            return self.proj(match_size(features, self.size))
        return self.proj(features.flatten(1))


def fitnet_loss(adapted: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the adapted student features and the teacher's."""
    return F.mse_loss(adapted.float(), teacher.float().reshape(adapted.shape))


class StudentWithTap(nn.Module):
    """The module a feature-distilled student trains as: the student and (FitNets) its adapter, so that DDP
    synchronises both; the forward returns the student's logits and keeps its (adapted) features.
    Checkpoints hold the student alone, the adapter beside it."""

    def __init__(self, student: nn.Module, tap: FeatureTap, adapter: nn.Module | None):
        super().__init__()
        self.student = student
        self.adapter = adapter
        self.tap = tap
        self.features: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.student(x)
        if self.training:
            feats = self.tap.features
            self.features = self.adapter(feats) if self.adapter is not None else feats
        return logits
