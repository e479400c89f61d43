"""Distillation beyond Hinton: DKD, DIST, FitNets' adapter, attention transfer, layer taps, the loss registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vistrain.errors import ConfigError
from vistrain.strategies.distill import DistillationLoss, TeacherView, distillation_loss
from vistrain.strategies.distill_losses import (FeatureAdapter, FeatureTap, StudentWithTap, at_loss, dist_loss,
                                                dkd_loss, fitnet_loss, logit_loss)
from vistrain.data.pipeline import InputSpec

ZS = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.0, -1.0, 3.0, 0.5], [2.0, 0.1, 0.2, 0.3]])
ZT = torch.tensor([[2.0, 1.0, 0.0, -0.5], [0.5, 0.5, 4.0, 1.0], [3.0, -1.0, 0.0, 1.0]])
Y = torch.tensor([1, 2, 0])


def softmax(v, t):
    e = np.exp(np.asarray(v, dtype=np.float64) / t)
    return e / e.sum()


def kl(p, q):
    return float(sum(a * np.log(a / b) for a, b in zip(p, q)))


def test_dkd_equals_a_hand_computation():
    """Zhao et al. 2022, eq. 7: TCKD on (p_target, 1 − p_target), NCKD on the non-target classes renormalised."""
    T, alpha, beta = 2.0, 1.5, 8.0
    total = 0.0
    for s, t, y in zip(ZS.tolist(), ZT.tolist(), Y.tolist()):
        ps, pt = softmax(s, T), softmax(t, T)
        tckd = kl([pt[y], 1 - pt[y]], [ps[y], 1 - ps[y]])
        rest = [i for i in range(4) if i != y]
        nckd = kl(softmax([t[i] for i in rest], T), softmax([s[i] for i in rest], T))
        total += T * T * (alpha * tckd + beta * nckd)
    assert float(dkd_loss(ZS, ZT, Y, T, alpha, beta)) == pytest.approx(total / 3, rel=1e-5)
    # soft targets (smoothing, mixing) use their most likely class as the target
    soft = F.one_hot(Y, 4).float() * 0.7 + 0.075
    assert float(dkd_loss(ZS, ZT, soft, T, alpha, beta)) == pytest.approx(total / 3, rel=1e-5)
    # and its decomposition: with beta = alpha = 1 it is the KD term's classical split (Zhao et al., eq. 5)
    kd_full = float(F.kl_div(F.log_softmax(ZS / T, 1), F.softmax(ZT / T, 1), reduction="none").sum(1).mean()) * T * T
    assert float(dkd_loss(ZS, ZT, Y, T, 1.0, 1.0)) != pytest.approx(kd_full)  # NCKD is weighted by 1 − p_t in KD


def test_dist_equals_a_hand_computation():
    """Huang et al. 2022: T²·(β·(1 − mean over images of Pearson r) + γ·(1 − mean over classes of Pearson r))."""
    T, beta, gamma = 3.0, 1.0, 2.0
    ys = np.stack([softmax(r, T) for r in ZS.tolist()])
    yt = np.stack([softmax(r, T) for r in ZT.tolist()])
    inter = 1 - np.mean([np.corrcoef(ys[i], yt[i])[0, 1] for i in range(3)])
    intra = 1 - np.mean([np.corrcoef(ys[:, j], yt[:, j])[0, 1] for j in range(4)])
    expected = T * T * (beta * inter + gamma * intra)
    assert float(dist_loss(ZS, ZT, T, beta, gamma)) == pytest.approx(expected, rel=1e-4)
    assert float(dist_loss(ZT, ZT, T)) == pytest.approx(0.0, abs=1e-4)  # identical predictions: nothing to learn


def test_logit_losses_from_the_registry_and_alpha():
    kd = logit_loss("kd", {})
    assert float(kd(ZS, ZT, Y, 2.0)) == pytest.approx(float(distillation_loss(ZS, ZT, Y, 2.0, 1.0)), rel=1e-6)
    dkd = logit_loss("dkd", {"alpha": 1.0, "beta": 4.0})
    ce = float(F.cross_entropy(ZS, Y))
    got = float(distillation_loss(ZS, ZT, Y, 2.0, 0.25, dkd))
    assert got == pytest.approx(0.25 * float(dkd_loss(ZS, ZT, Y, 2.0, 1.0, 4.0)) + 0.75 * ce, rel=1e-6)
    with pytest.raises(ConfigError, match="does not take"):
        logit_loss("dist", {"delta": 1})


def test_the_fitnet_adapter_maps_student_features_to_the_teachers_shape():
    maps = FeatureAdapter((2, 8, 10, 10), (2, 16, 5, 5))  # larger maps: pooled, then a 1x1 convolution + BN
    assert isinstance(maps.proj[0], torch.nn.Conv2d) and maps.proj[0].kernel_size == (1, 1)
    assert maps(torch.randn(2, 8, 10, 10)).shape == (2, 16, 5, 5)
    smaller = FeatureAdapter((2, 8, 4, 4), (2, 16, 7, 7))  # smaller maps: interpolated up
    assert smaller(torch.randn(2, 8, 4, 4)).shape == (2, 16, 7, 7)
    vectors = FeatureAdapter((2, 800), (2, 84))
    assert isinstance(vectors.proj, torch.nn.Linear) and (vectors.proj.in_features, vectors.proj.out_features) == (800, 84)
    mixed = FeatureAdapter((2, 800), (2, 16, 5, 5))  # a vector to a map: flattened
    out = mixed(torch.randn(2, 800))
    assert out.shape == (2, 400)
    out = out.detach()
    assert float(fitnet_loss(out, torch.zeros(2, 16, 5, 5))) == pytest.approx(float(out.pow(2).mean()), rel=1e-6)


def test_attention_transfer():
    f = torch.randn(3, 8, 6, 6)
    assert float(at_loss(f, f * 2.0)) == pytest.approx(0.0, abs=1e-7)  # normalised maps: the scale does not count
    g = torch.randn(3, 32, 3, 3)
    # another channel count and size: the student's map is pooled to the teacher's, channels averaged away
    expected = (F.normalize(F.adaptive_avg_pool2d(f, 3).pow(2).mean(1).flatten(1), dim=1)
                - F.normalize(g.pow(2).mean(1).flatten(1), dim=1)).pow(2).mean()
    assert float(at_loss(f, g)) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ConfigError, match="feature maps"):
        at_loss(torch.randn(3, 10), g)


def small_cnn():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 8 * 8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def test_feature_taps_read_a_named_layer_or_the_classifiers_input():
    model = small_cnn()
    x = torch.randn(2, 1, 8, 8)
    named = FeatureTap(model, "0", "student")
    default = FeatureTap(model, "", "student")
    model(x)
    assert torch.equal(named.features, model[0](x))
    assert default.name == "input of 5" and torch.equal(default.features, model[4](model[3](model[2](model[1](model[0](x))))))
    with pytest.raises(ConfigError, match=r"the teacher \(Sequential\) has no layer 'O'.*its layers: 0, 1, 2, 3, 4, 5"):
        FeatureTap(model, "O", "teacher")


def test_a_feature_loss_trains_the_adapter_and_the_student_and_never_the_teacher():
    torch.manual_seed(0)
    spec = InputSpec(1, 8, (0.0,), (1.0,))
    teacher = TeacherView(small_cnn(), spec, spec, layer="")
    student = small_cnn()
    wrapped = StudentWithTap(student, FeatureTap(student, "3", "student"), FeatureAdapter((2, 16), (2, 16)))
    loss = DistillationLoss(teacher, 4.0, 0.9, student=wrapped, feature="fitnet", feature_weight=10.0)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    wrapped.train()
    value = loss(wrapped(x), y, x)
    plain = distillation_loss(student(x), teacher(x), y, 4.0, 0.9)
    feat = fitnet_loss(wrapped.adapter(student[3](student[2](student[1](student[0](x))))), teacher.tap.features)
    assert float(value.detach()) == pytest.approx(float((plain + 10.0 * feat).detach()), rel=1e-5)
    value.backward()
    assert wrapped.adapter.proj.weight.grad is not None and student[0].weight.grad is not None
    assert all(p.grad is None for p in teacher.model.parameters())
    wrapped.eval()
    wrapped.features = None
    wrapped(x)
    assert wrapped.features is None  # evaluation does not run the adapter


def test_the_teacher_sees_exactly_the_mixed_batch_the_student_trains_on():
    """Consistent teaching (Beyer et al. 2022): with function matching the loss's images are the mixed batch
    the student's forward got, step after step, not the loader's unmixed images."""
    from vistrain.augment.batch import BatchMix
    from vistrain.data.pipeline import TensorBatchLoader
    from vistrain.engine.loop import fit

    torch.manual_seed(0)
    x, y = torch.rand(32, 1, 8, 8), torch.arange(32) % 3
    student_inputs, loss_images, loader_images = [], [], []

    class Recording(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small_cnn()

        def forward(self, images):
            if self.training:
                student_inputs.append(images.detach().clone())
            return self.net(images)

    spec = InputSpec(1, 8, (0.0,), (1.0,))
    teacher = TeacherView(small_cnn(), spec, spec)
    loss = DistillationLoss(teacher, 4.0, 1.0)

    def recording_loss(logits, targets, images):
        loss_images.append(images.detach().clone())
        return loss(logits, targets, images)

    recording_loss.sees_images = True
    mix = BatchMix(mixup_alpha=1.0, mixup_prob=1.0, num_classes=3)

    def transform(images, targets):
        loader_images.append(images.clone())
        return mix(images, targets)

    model = Recording()
    fit(model, TensorBatchLoader(x, y, 8, shuffle=True), TensorBatchLoader(x, y, 16, shuffle=False),
        torch.optim.SGD(model.parameters(), lr=0.01), device=torch.device("cpu"), epochs=1,
        loss_fn=recording_loss, batch_transform=transform)
    assert len(loss_images) == len(student_inputs) == 4
    for seen_by_teacher, seen_by_student, loaded in zip(loss_images, student_inputs, loader_images):
        assert torch.equal(seen_by_teacher, seen_by_student)
        assert not torch.equal(seen_by_teacher, loaded)  # mixed
