"""The element-wise gradient path of tiny tied models and the `init` argument of the trainer."""
import pytest
import torch

from monosemantic.errors import InputError
from monosemantic.toy.sampler import FeatureSampler
from monosemantic.toy.models import batch_buffer, make_model
from monosemantic.toy.train import train_toy


@pytest.mark.parametrize("kind", ["linear", "relu-output", "relu-hidden"])
@pytest.mark.parametrize("n, m", [(2, 1), (3, 1), (2, 2)])
def test_feature_major_gradient_matches_autograd(kind, n, m):
    I, B = 7, 64
    model = make_model(kind, I, n, m, list(range(I)))
    assert model.feature_major
    model.b[:] = torch.randn(I, n, generator=torch.Generator().manual_seed(0)) * 0.1
    x = batch_buffer(model, B)
    FeatureSampler(torch.full((I, n), 0.5), seed=1).sample_into(x)
    w = torch.rand(I, 1, n, generator=torch.Generator().manual_seed(1)) + 0.5
    l1 = None if kind == "linear" else torch.linspace(0, 0.3, I)  # the L1 penalty on h, per instance
    model._loss_grad_feature_major(x, w, l1, chunk=3)  # several chunks, the last one short
    W, b = model.W.clone().requires_grad_(), model.b.clone().requires_grad_()
    loss = ((model.forward(x.contiguous(), W, b) - x) ** 2 * w).sum(2).mean(1)
    if l1 is not None:
        h = torch.bmm(x.contiguous(), W.transpose(1, 2))
        loss = loss + l1 * (h.relu() if model.hidden_relu else h).abs().sum(2).mean(1)
    loss.sum().backward()
    assert torch.allclose(model.grad, torch.cat([W.grad, b.grad[:, None]], 1), atol=1e-5)


def test_train_toy_starts_from_init():
    init = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, -1.0]]])
    run = train_toy("relu-output", 2, 1, torch.full((1, 2), 0.5), torch.ones(2), steps=1, seeds=3, init=init,
                    eval_batch=256)
    assert torch.allclose(run.model.W, init, atol=2e-3)  # one AdamW step of lr 1e-3 from the given W
    with pytest.raises(InputError, match="init must be W"):
        train_toy("relu-output", 2, 1, torch.full((1, 2), 0.5), torch.ones(2), steps=1, seeds=2, init=init)


@pytest.mark.parametrize("n, m, seed, message", [(6, 2, -1, "seed must lie"), (6, 2**31, 0, "needs about"),
                                                 (10**9, 3, 0, "needs about")])
def test_train_toy_refuses_a_bad_seed_or_sizes_that_cannot_fit_before_allocating(n, m, seed, message):
    # every toy experiment (privileged, computation, adversarial, dynamics, protocols) trains through here
    with pytest.raises(InputError, match=message):
        train_toy("abs", n, m, torch.full((1, n), 0.1), torch.ones(n), steps=1, seed=seed)
