import pytest
import torch

from monosemantic.errors import InputError
from monosemantic.toy.sampler import FeatureSampler, importance, probabilities
from monosemantic.toy.models import loss_per_instance, make_model
from monosemantic.optim import AdamW, lr_at
from monosemantic.toy.train import train


def _batch(instances=4, n=6, batch=64):
    p = probabilities([0.0, 0.5, 0.8, 0.9][:instances], n)
    return FeatureSampler(p, seed=0).sample_into(torch.empty(instances, batch, n))


@pytest.mark.parametrize("kind", ["linear", "relu-output", "relu-hidden"])
def test_hand_written_gradients_match_autograd(kind):
    model = make_model(kind, 4, 6, 3, [1, 2, 3, 4])
    model.b[:] = torch.randn(4, 6, generator=torch.Generator().manual_seed(0)) * 0.1  # non-zero bias
    x = _batch()
    w = importance(6, 0.9).expand(4, 6).reshape(4, 1, 6)
    model.loss_grad(x, w)
    W = model.W.clone().requires_grad_()
    b = model.b.clone().requires_grad_()
    loss = (((model.forward(x, W, b) - x) ** 2) * w).sum(2).mean(1)
    loss.sum().backward()
    torch.testing.assert_close(model.grad[:, :3], W.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.grad[:, 3], b.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss_per_instance(model, x, w).float(), loss.detach(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["relu-output", "relu-hidden"])
def test_hand_written_l1_gradients_match_autograd(kind):
    # the penalty l1_i * mean_b ||h||_1, one lambda per instance (0 included): for relu-output h = Wx is
    # signed (gradient l1 sign(h)), for relu-hidden h = ReLU(Wx)
    model = make_model(kind, 4, 6, 3, [1, 2, 3, 4])
    model.b[:] = torch.randn(4, 6, generator=torch.Generator().manual_seed(0)) * 0.1
    x = _batch()
    w = importance(6, 0.9).expand(4, 6).reshape(4, 1, 6)
    l1 = torch.tensor([0.0, 0.03, 0.3, 1.0])
    model.loss_grad(x, w, l1)
    W = model.W.clone().requires_grad_()
    b = model.b.clone().requires_grad_()
    h = torch.bmm(x, W.transpose(1, 2))
    h = h.relu() if kind == "relu-hidden" else h
    loss = (((model.forward(x, W, b) - x) ** 2) * w).sum(2).mean(1) + l1 * h.abs().sum(2).mean(1)
    loss.sum().backward()
    torch.testing.assert_close(model.grad[:, :3], W.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.grad[:, 3], b.grad, rtol=1e-5, atol=1e-6)
    model.loss_grad(x, w)  # and the penalty does change the gradient of the penalised instances
    assert (model.grad[2:, :3] - W.grad[2:]).abs().max() > 1e-3


def test_adamw_follows_torch_optim():
    g = torch.Generator().manual_seed(0)
    p1 = torch.randn(3, 4, generator=g)
    p2 = p1.clone().requires_grad_()
    ours = AdamW([p1], lr=1e-2, weight_decay=0.01)
    ref = torch.optim.AdamW([p2], lr=1e-2, weight_decay=0.01)
    for _ in range(20):
        grad = torch.randn(3, 4, generator=g)
        ours.step([grad])
        p2.grad = grad.clone()
        ref.step()
    torch.testing.assert_close(p1, p2.detach(), rtol=1e-5, atol=1e-6)


def test_instances_are_independent():
    # Training 3 instances together gives instance 0 the same weights as training it alone with
    # the same data stream: nothing couples instances.
    p = probabilities([0.5, 0.5, 0.5], 5)
    w = importance(5, 0.9).expand(3, 5)
    together = make_model("relu-output", 3, 5, 2, [7, 8, 9])
    train(together, FeatureSampler(p, seed=0), w, steps=50, batch=32)
    alone = make_model("relu-output", 1, 5, 2, [7])
    train(alone, FeatureSampler(p[:1], seed=0), w[:1], steps=50, batch=32)
    torch.testing.assert_close(together.W[:1], alone.W, rtol=1e-5, atol=1e-6)


def test_training_reduces_loss_for_every_model():
    for kind in ("linear", "relu-output", "relu-hidden", "abs"):
        p = probabilities([0.5, 0.9], 8)
        sampler = FeatureSampler(p, seed=0, signed=kind == "abs")
        model = make_model(kind, 2, 8, 3, [0, 1])
        w = importance(8, 0.9).expand(2, 8)
        x = FeatureSampler(p, seed=99, signed=kind == "abs").sample_into(torch.empty(2, 4096, 8))
        before = loss_per_instance(model, x, w.reshape(2, 1, 8))
        log = train(model, sampler, w, steps=300, batch=256, lr=1e-2)
        after = loss_per_instance(model, x, w.reshape(2, 1, 8))
        assert (after < 0.8 * before).all(), (kind, before, after)
        assert log.steps_done == 300 and log.diverged_at is None


def test_divergence_stops_at_the_step_and_keeps_weights():
    p = probabilities([0.5], 4)
    model = make_model("relu-output", 1, 4, 2, [0])
    # lr 1e30 throws the weights to ~1e30; the next forward pass overflows float32
    log = train(model, FeatureSampler(p, seed=0), torch.ones(1, 4), steps=10, batch=16, lr=1e30)
    assert log.diverged_at is not None and log.diverged_at < 10
    assert log.steps_done == log.diverged_at  # stopped before the bad update
    assert torch.isfinite(model.theta).all()  # the last good weights


def test_bad_arguments():
    with pytest.raises(InputError):
        make_model("quadratic", 1, 4, 2, [0])
    with pytest.raises(InputError):
        make_model("relu-output", 1, 0, 2, [0])
    with pytest.raises(InputError):
        train(make_model("linear", 1, 4, 2, [0]), FeatureSampler(probabilities([0.5], 4)), torch.ones(1, 4), 0)


def test_lr_schedule():
    assert lr_at(0, 100, 1.0, "constant", 10) == pytest.approx(0.1)
    assert lr_at(50, 100, 1.0, "constant", 10) == 1.0
    assert lr_at(10, 100, 1.0, "cosine", 10) == pytest.approx(1.0)
    assert lr_at(99, 100, 1.0, "cosine", 0) < 0.01


def test_feature_probabilities_and_importances_too_large_are_refused_before_allocating():
    with pytest.raises(InputError, match="needs about"):
        probabilities([0.9, 0.5], 2**40)
    with pytest.raises(InputError, match="needs about"):
        probabilities(0.5, 2**63)  # beyond torch's sizes: refused, not an overflow
    with pytest.raises(InputError, match="needs about"):
        importance(2**40)
    with pytest.raises(InputError, match="n must be positive"):
        probabilities([0.5, 0.9], -1)  # not a [2, 1] tensor
