"""Helpers shared by the benchmarks: the machine line, the notebook-style reference trainer, where SAELens is."""
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}; {os.cpu_count()} cpus; torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"python {platform.python_version()}")


ROOT = Path(__file__).resolve().parent.parent
SAELENS_INSTALL = ("pip install -c requirements.lock -e '.[bench]', or `make peers` for a venv of its own at .peers/venv "
                   "($PEERS_DIR/venv is looked at too)")


def saelens_python(venv: str | None = None) -> str | None:
    """A Python that has sae_lens: VENV's when given; else this one, $PEERS_DIR/venv's or the repository's
    .peers/venv's, the first that has it. None when none has."""
    found = [Path(venv) / "bin/python"] if venv else [
        Path(sys.executable), *([Path(os.environ["PEERS_DIR"]) / "venv/bin/python"] if os.environ.get("PEERS_DIR") else []),
        ROOT / ".peers/venv/bin/python"]
    has = "import importlib.util, sys; sys.exit(importlib.util.find_spec('sae_lens') is None)"
    for py in found:
        if py.exists() and subprocess.run([str(py), "-c", has], capture_output=True).returncode == 0:
            return str(py)
    return None


def notebook_train(W, probs, imp, steps, batch, generator, weight_decay=0.01):
    """The public notebook's training loop: W [instances, n, m] (the start, trained in place) in one einsum
    model, two dense torch.rand draws per step, autograd, torch.optim.AdamW (lr 1e-3).
    probs: [instances]; imp: [n] or [instances, n], both on W's device, as is the generator.
    Returns (seconds, W [instances, m, n], b [instances, n])."""
    k, n = W.shape[0], W.shape[1]
    W.requires_grad_(True)
    b = torch.zeros(k, n, device=W.device, requires_grad=True)
    opt = torch.optim.AdamW([W, b], lr=1e-3, weight_decay=weight_decay)
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        feat = torch.rand(batch, k, n, generator=generator, device=W.device)
        x = torch.where(torch.rand(batch, k, n, generator=generator, device=W.device) <= probs[None, :, None], feat,
                        torch.zeros(()))
        h = torch.einsum("bif,ifh->bih", x, W)
        out = F.relu(torch.einsum("bih,ifh->bif", h, W) + b)
        loss = (imp * (x - out) ** 2).sum(-1).mean(0)
        loss.sum().backward()
        opt.step()
    if W.is_cuda:
        torch.cuda.synchronize(W.device)
    return time.perf_counter() - start, W.detach().transpose(1, 2).contiguous(), b.detach()
