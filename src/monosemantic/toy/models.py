"""Toy models of superposition, batched over instances: one tensor holds every instance's weights.

    linear        h = W x          x' = W^T h + b
    relu-output   h = W x          x' = ReLU(W^T h + b)         (the paper's main model)
    relu-hidden   h = ReLU(W x)    x' = ReLU(W^T h + b)         (privileged hidden basis)
    abs           h = ReLU(W1 x)   y' = ReLU(W2 h + b), target |x|, x in [-1, 1]   (computation)

Shapes: `W: [instances, m, n]`, `b: [instances, n]`, batches `x: [instances, batch, n]`.
The loss of instance i is mean over the batch of sum_k I_k (target_k - out_k)^2. The tied models
take an optional L1 penalty on the hidden activations, l1_i * mean over the batch of sum_j |h_j|,
with its own lambda per instance (`l1: [instances]`), so a whole lambda sweep is one batched model.

Every model is a `torch.nn.Module`: `forward(x)` is the reconstruction, the weights are parameters
(`.to(device)`, `state_dict`, hooks and autograd work as for any module). The tied models also compute
their gradients by hand (`loss_grad`): the step is a handful of small `bmm`s and element-wise passes
into preallocated buffers on the parameters' device, several times faster than autograd at these sizes
(bound by per-op overhead and allocation, not arithmetic). The tests check the hand-written gradients
against autograd on `forward`. The abs and MoE models train by autograd.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from monosemantic.errors import InputError

MODELS = ("linear", "relu-output", "relu-hidden", "abs")

_threshold_backward = torch.ops.aten.threshold_backward.grad_input  # grad * (self > 0), written to out
FEATURE_MAJOR_CHUNK = 128  # instances per pass of the element-wise path: ~1 MB of intermediates at batch 1024


def xavier_normal(instances: int, rows: int, cols: int, seeds: list[int]) -> torch.Tensor:
    """[instances, rows, cols], instance i drawn from its own seed (Xavier normal, as the paper)."""
    std = math.sqrt(2.0 / (rows + cols))
    out = torch.empty(instances, rows, cols)
    for i, s in enumerate(seeds):
        out[i].normal_(0.0, std, generator=torch.Generator().manual_seed(int(s)))
    return out


L1_MODELS = ("relu-output", "relu-hidden")  # the penalty needs an h to act on: refused elsewhere


def check_l1(kind: str, l1: float | torch.Tensor, instances: int) -> torch.Tensor | None:
    """The L1 coefficient(s) as a float tensor [instances] (None for no penalty), or an InputError.

    The linear model keeps the top m features whatever the penalty, and the abs model's penalty
    would need its own gradient; both refuse a penalty rather than silently ignore it.
    """
    lam = torch.as_tensor(l1, dtype=torch.float32)
    if lam.ndim > 1 or (lam.ndim == 1 and len(lam) != instances):
        raise InputError(f"l1 must be a number or one value per instance ({instances}), got shape {list(lam.shape)}")
    if not torch.isfinite(lam).all() or (lam < 0).any():
        raise InputError(f"l1 (the L1 penalty on hidden activations) must be finite and >= 0, got {lam.tolist()}")
    if not (lam > 0).any():
        return None
    if kind not in L1_MODELS:
        raise InputError(f"the {kind} model takes no L1 penalty on hidden activations; use {' or '.join(L1_MODELS)}")
    return lam.expand(instances) if lam.ndim == 0 else lam


def _check_sizes(instances: int, n: int, m: int, seeds: list[int]) -> None:
    for name, v in (("instances", instances), ("n", n), ("m", m)):
        if v < 1:
            raise InputError(f"{name} must be positive, got {v}")
    if len(seeds) != instances:
        raise InputError(f"need one seed per instance: {len(seeds)} seeds for {instances} instances")


class TiedToyModel(nn.Module):
    """linear, relu-output and relu-hidden: h = W x (ReLU'd for relu-hidden), x' = W^T h + b.

    The bias is stored as one more row of the parameter `theta: [instances, m + 1, n]` (rows :m are W,
    row m is b) so that with a row of ones appended to h^T a single bmm gives W^T h + b in the forward
    pass and both dL/dW (its W^T h part) and dL/db in the backward pass. `W` and `b` are views of it.
    `loss_grad` writes into the buffer `grad` (autograd's `theta.grad` is left to autograd users).
    """

    def __init__(self, kind: str, instances: int, n: int, m: int, seeds: list[int],
                 device: torch.device | str = "cpu"):
        if kind not in ("linear", "relu-output", "relu-hidden"):
            raise InputError(f"unknown tied toy model {kind!r}")
        _check_sizes(instances, n, m, seeds)
        super().__init__()
        self.kind, self.instances, self.n, self.m = kind, instances, n, m
        self.hidden_relu = kind == "relu-hidden"
        self.output_relu = kind != "linear"
        theta = torch.zeros(instances, m + 1, n)
        theta[:, :m] = xavier_normal(instances, m, n, seeds)  # drawn on the CPU: the same start on every device
        self.theta = nn.Parameter(theta.to(device))
        self.register_buffer("grad", torch.zeros_like(self.theta), persistent=False)
        self._ws: dict[str, torch.Tensor] = {}

    @property
    def W(self) -> torch.Tensor:  # [instances, m, n], a view of theta outside autograd
        return self.theta.detach()[:, : self.m]

    @property
    def b(self) -> torch.Tensor:  # [instances, n], a view of theta outside autograd
        return self.theta.detach()[:, self.m]

    def params(self) -> list[torch.Tensor]:
        return [self.theta]

    def grads(self) -> list[torch.Tensor]:
        return [self.grad]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"W": self.W.clone(), "b": self.b.clone()}

    @torch.no_grad()
    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        self.theta[:, : self.m] = tensors["W"]
        self.theta[:, self.m] = tensors["b"]

    def target(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """h: [instances, batch, m] for x: [instances, batch, n]."""
        h = torch.bmm(x, self.W.transpose(1, 2))
        return h.relu() if self.hidden_relu else h

    def forward(self, x: torch.Tensor, W: torch.Tensor | None = None, b: torch.Tensor | None = None) -> torch.Tensor:
        """x': [instances, batch, n], differentiable in theta (or in W, b when given)."""
        W = self.theta[:, : self.m] if W is None else W
        b = self.theta[:, self.m] if b is None else b
        h = torch.bmm(x, W.transpose(1, 2))
        if self.hidden_relu:
            h = h.relu()
        out = torch.baddbmm(b[:, None, :], h, W)
        return out.relu() if self.output_relu else out

    def _workspace(self, batch: int) -> dict[str, torch.Tensor]:
        key = (batch, self.theta.device, self.theta.dtype)  # rebuilt after a batch change or `.to()`
        if self._ws.get("batch") != key:
            I, m, n, new = self.instances, self.m, self.n, self.theta.new_empty
            self._ws = {
                "batch": key,
                "hT": new(I, m, batch),
                "hT1": new(I, m + 1, batch).fill_(1.0),  # [h^T; 1]
                "dhT": new(I, m, batch),
                "z": new(I, batch, n),
                "r": new(I, batch, n),
                "dW": new(I, m, n),
            }
        return self._ws

    @property
    def feature_major(self) -> bool:
        """Tiny models (n=2, m=1: the phase diagrams) take the element-wise path: a bmm over thousands
        of 1 x 2 matrices costs a GEMM call per instance, more than the arithmetic."""
        return 7 * self.n * self.m + 4 * self.n <= 40  # element-wise passes per step, in units of I * B

    @torch.no_grad()
    def loss_grad(self, x: torch.Tensor, weight: torch.Tensor, l1: torch.Tensor | None = None) -> None:
        """Write dL/dtheta of the importance-weighted loss (plus l1 * mean_b ||h||_1) into `self.grad`.

        x: [instances, batch, n] (contiguous); weight: [instances, 1, n] = importance; l1: [instances] or None.
        """
        if self.feature_major:
            return self._loss_grad_feature_major(x, weight, l1)
        ws = self._workspace(x.shape[1])
        m, W, hT, hT1, dhT = self.m, self.W, ws["hT"], ws["hT1"], ws["dhT"]
        torch.bmm(W, x.transpose(1, 2), out=hT)  # W x^T: [I, m, B] (faster than x W^T for small m)
        if self.hidden_relu:
            torch.clamp(hT, min=0, out=hT)
        hT1[:, :m] = hT
        z = torch.bmm(hT1.transpose(1, 2), self.theta, out=ws["z"])  # W^T h + b: [I, B, n]
        r = torch.sub(z, x, out=ws["r"])
        if self.output_relu:
            _threshold_backward(r, z, 0.0, grad_input=r)  # dL/dz up to the factor 2 I_k / B
        c = weight * (2.0 / x.shape[1])  # [I, 1, n]
        torch.bmm(hT1, r, out=self.grad)  # [h^T G; sum_b G]
        self.grad.mul_(c)
        torch.bmm(W * c, r.transpose(1, 2), out=dhT)  # dL/dh^T: [I, m, B]
        if l1 is not None:
            self._add_l1_grad(dhT, hT, l1, x.shape[1])
        if self.hidden_relu:
            _threshold_backward(dhT, hT, 0.0, grad_input=dhT)
        torch.bmm(dhT, x, out=ws["dW"])  # the W in h = W x
        self.grad[:, :m] += ws["dW"]

    def _add_l1_grad(self, dhT: torch.Tensor, hT: torch.Tensor, l1: torch.Tensor, batch: int) -> None:
        """dhT += d(l1 * mean_b sum_j |h_j|)/dh^T = l1 sign(h) / B; for a ReLU h, 1 where live (masked after)."""
        c1 = (l1 / batch).reshape(-1, 1, 1)
        if self.hidden_relu:
            dhT.add_(c1)
        else:
            dhT.addcmul_(torch.sign(hT), c1)

    def _loss_grad_feature_major(self, x: torch.Tensor, weight: torch.Tensor, l1: torch.Tensor | None = None,
                                 chunk: int = FEATURE_MAJOR_CHUNK) -> None:
        """`loss_grad` as a few element-wise passes per feature over x^T: [I, n, B], each instance's weights
        broadcast along the batch (contiguous rows, no per-instance calls), `chunk` instances at a time so
        that the intermediates stay in cache (the passes are memory-bound)."""
        I, B, n, m = x.shape[0], x.shape[1], self.n, self.m
        chunk = min(chunk, I)
        key = (B, chunk, self.theta.device, self.theta.dtype)
        if self._ws.get("feature_major") != key:
            new = self.theta.new_empty
            self._ws = {"feature_major": key, "hT": new(chunk, m, B),
                        "dhT": new(chunk, m, B), "zT": new(chunk, n, B), "rT": new(chunk, n, B),
                        "tmp": new(chunk, n, B), "g": new(chunk, n)}
        ws, xT_all, c_all = self._ws, x.transpose(1, 2), weight.reshape(I, n, 1) * (2.0 / B)
        for s in range(0, I, chunk):
            e = min(I, s + chunk)
            k = e - s
            xT, W, b, c, grad = xT_all[s:e], self.W[s:e], self.b[s:e], c_all[s:e], self.grad[s:e]
            hT, dhT, zT, rT, tmp, g = (ws[key][:k] for key in ("hT", "dhT", "zT", "rT", "tmp", "g"))
            WT = W.transpose(1, 2)  # [k, n, m]
            torch.mul(W[:, :, :1], xT[:, :1], out=hT)  # h^T = sum_f W[:, f] x_f: [k, m, B]
            for f in range(1, n):
                hT.addcmul_(W[:, :, f : f + 1], xT[:, f : f + 1])
            if self.hidden_relu:
                hT.clamp_(min=0)
            torch.addcmul(b[:, :, None], WT[:, :, :1], hT[:, :1], out=zT)  # z^T = W^T h + b: [k, n, B]
            for j in range(1, m):
                zT.addcmul_(WT[:, :, j : j + 1], hT[:, j : j + 1])
            torch.sub(zT, xT, out=rT)
            if self.output_relu:
                _threshold_backward(rT, zT, 0.0, grad_input=rT)
            rT.mul_(c)  # G^T = dL/dz^T
            for j in range(m):
                torch.sum(torch.mul(rT, hT[:, j : j + 1], out=tmp), dim=2, out=g)
                grad[:, j] = g
            torch.sum(rT, dim=2, out=g)
            grad[:, m] = g
            torch.mul(W[:, :, :1], rT[:, :1], out=dhT)  # dL/dh^T = W G^T: [k, m, B]
            for f in range(1, n):
                dhT.addcmul_(W[:, :, f : f + 1], rT[:, f : f + 1])
            if l1 is not None:
                self._add_l1_grad(dhT, hT, l1[s:e], B)
            if self.hidden_relu:
                _threshold_backward(dhT, hT, 0.0, grad_input=dhT)
            for j in range(m):  # the W in h = W x
                torch.sum(torch.mul(xT, dhT[:, j : j + 1], out=tmp), dim=2, out=g)
                grad[:, j] += g


def batch_buffer(model, batch: int) -> torch.Tensor:
    """x: [instances, batch, n] for `FeatureSampler.sample_into`, on the model's device and in its dtype, stored
    the way the model reads it fastest."""
    new = next(model.parameters()).new_empty
    if getattr(model, "feature_major", False):
        return new(model.instances, model.n, batch).transpose(1, 2)
    return new(model.instances, batch, model.n)


class AutogradToyModel(nn.Module):
    """What the toy models trained by autograd share. A subclass sets `b_out` and defines `_named()` (its
    parameters by their names in `tensors()`, in the optimiser's order) and `_loss(x, weight)`: [instances]."""

    kind = ""

    def _named(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _loss(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def b(self) -> torch.Tensor:
        return self.b_out.detach()

    def params(self) -> list[torch.Tensor]:
        return list(self._named().values())

    def grads(self) -> list[torch.Tensor]:
        return [p.grad for p in self.params()]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: p.detach().clone() for k, p in self._named().items()}

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for k, p in self._named().items():
                p.copy_(tensors[k])

    def loss_grad(self, x: torch.Tensor, weight: torch.Tensor, l1: torch.Tensor | None = None) -> None:
        if l1 is not None:
            raise InputError(f"the {self.kind} model takes no L1 penalty on hidden activations")
        for p in self.params():
            p.grad = None
        self._loss(x, weight).sum().backward()


class AbsToyModel(AutogradToyModel):
    """h = ReLU(W1 x), y' = ReLU(W2 h + b): computes |x| for more features than neurons when sparse.

    W1: [instances, m, n], W2: [instances, n, m], b: [instances, n]; gradients by autograd.
    """

    kind = "abs"

    def __init__(self, instances: int, n: int, m: int, seeds: list[int], device: torch.device | str = "cpu"):
        _check_sizes(instances, n, m, seeds)
        super().__init__()
        self.instances, self.n, self.m = instances, n, m
        self.W1 = nn.Parameter(xavier_normal(instances, m, n, seeds).to(device))
        self.W2 = nn.Parameter(xavier_normal(instances, n, m, [s + 7919 for s in seeds]).to(device))
        self.b_out = nn.Parameter(torch.zeros(instances, n, device=device))

    @property
    def W(self) -> torch.Tensor:  # the input weights carry the feature directions: [instances, m, n]
        return self.W1.detach()

    def _named(self) -> dict[str, torch.Tensor]:
        return {"W": self.W1, "W2": self.W2, "b": self.b_out}

    def target(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x, self.W1.transpose(1, 2)).relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.b_out[:, None, :], self.hidden(x), self.W2.transpose(1, 2)).relu()

    def _loss(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return ((self.forward(x) - self.target(x)) ** 2 * weight).sum(dim=2).mean(dim=1)


def make_model(kind: str, instances: int, n: int, m: int, seeds: list[int], init: torch.Tensor | None = None,
               device: torch.device | str = "cpu"):
    """A batched toy model on `device`; `init: [instances, m, n]` replaces the Xavier start of W (biases at 0)."""
    if kind == "abs":
        model = AbsToyModel(instances, n, m, seeds, device)
    elif kind in MODELS:
        model = TiedToyModel(kind, instances, n, m, seeds, device)
    else:
        raise InputError(f"unknown model {kind!r}; choose from {', '.join(MODELS)}")
    if init is not None:
        init = torch.as_tensor(init, dtype=torch.float32)
        if tuple(init.shape) != (instances, m, n):
            raise InputError(f"init must be W: [instances, m, n] = {[instances, m, n]}, got {list(init.shape)}")
        if not torch.isfinite(init).all():
            raise InputError("init W has NaN or Inf")
        with torch.no_grad():
            model.W.copy_(init)  # W is a view of the trained parameter in both model classes
    return model


@torch.no_grad()
def hidden_l1_per_instance(model, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """[instances]: mean over the batch of ||h||_1, the quantity the L1 penalty multiplies (float64)."""
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for s in range(0, x.shape[1], chunk):
        total += model.hidden(x[:, s : s + chunk]).abs().sum(dim=(1, 2), dtype=torch.float64)
    return total / x.shape[1]


@torch.no_grad()
def loss_per_instance(model, x: torch.Tensor, weight: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """[instances]: mean over the batch of sum_k I_k (target_k - out_k)^2, in float64 accumulation."""
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for s in range(0, x.shape[1], chunk):
        xc = x[:, s : s + chunk]
        err = (model.forward(xc) - model.target(xc)) ** 2 * weight
        total += err.sum(dim=(1, 2), dtype=torch.float64)
    return total / x.shape[1]
