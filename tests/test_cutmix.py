"""CutMix and MixUp: labels mixed exactly by the pasted area / blend weight; soft targets reach the loss."""

from __future__ import annotations

import torch

from vistrain.augment.batch import BatchMix, cutmix, cutmix_box, mixup, one_hot
from vistrain.engine.loop import soft_cross_entropy, topk_correct


def _constant_batch(b=8, c=3, h=13, w=17):
    # Image i is filled with the value i, so every pixel says which image it came from.
    return torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, c, h, w).clone()


def test_cutmix_label_mix_equals_pasted_area_exactly():
    torch.manual_seed(0)
    images = _constant_batch()
    targets = one_hot(torch.arange(8), 8)
    for _ in range(50):
        mixed, soft, lam = cutmix(images, targets, alpha=1.0)
        for i in range(8):
            own = (mixed[i, 0] == i).float().mean().item()
            if (soft[i] == 1).any():  # paired with itself: nothing visible changed
                assert torch.equal(mixed[i], images[i])
                continue
            partner = [j for j in range(8) if j != i and soft[i, j] > 0][0]
            pasted = (mixed[i, 0] == partner).float().mean().item()
            assert abs(soft[i, i].item() - own) < 1e-6
            assert abs(soft[i, partner].item() - pasted) < 1e-6
            assert abs(soft[i, i].item() - lam) < 1e-6
        assert torch.allclose(soft.sum(dim=1), torch.ones(8))


def test_cutmix_box_is_clipped_and_lambda_recomputed():
    g = torch.Generator().manual_seed(1)
    for _ in range(100):
        y0, y1, x0, x1 = cutmix_box(10, 12, 0.3, g)
        assert 0 <= y0 <= y1 <= 10 and 0 <= x0 <= x1 <= 12


def test_mixup_blends_images_and_labels_by_lambda():
    torch.manual_seed(0)
    images = _constant_batch(b=4)
    mixed, soft, lam = mixup(images, one_hot(torch.arange(4), 4), alpha=0.4)
    for i in range(4):
        partner = [j for j in range(4) if soft[i, j] > 0 and j != i]
        expected = lam * i + (1 - lam) * (partner[0] if partner else i)
        assert torch.allclose(mixed[i], torch.full_like(mixed[i], expected), atol=1e-5)


def test_batchmix_probability_and_soft_targets_reach_the_loss():
    torch.manual_seed(0)
    images, labels = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    original = images.clone()
    never = BatchMix(cutmix_alpha=1.0, cutmix_prob=0.0, num_classes=10)
    out, soft = never(images, labels)
    assert torch.equal(out, images) and torch.equal(soft, one_hot(labels, 10))
    always = BatchMix(cutmix_alpha=1.0, cutmix_prob=1.0, mixup_alpha=0.2, mixup_prob=1.0, num_classes=10)
    mixed_any = False
    for _ in range(10):
        out, soft = always(images, labels)
        assert soft.shape == (16, 10) and torch.allclose(soft.sum(1), torch.ones(16))
        mixed_any |= not torch.equal(out, images)
        logits = torch.randn(16, 10, requires_grad=True)
        loss = soft_cross_entropy(logits, soft)
        loss.backward()
        assert torch.isfinite(loss) and int(topk_correct(logits.detach(), soft, (1,))[0]) <= 16
    assert mixed_any
    assert torch.equal(images, original)  # the caller's batch is not modified in place
