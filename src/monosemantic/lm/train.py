"""Training the byte LM: a readable loop (nanoGPT's), seeded, checkpointed into a run directory, resumable.

    res = train(LMTrainConfig(variant="l1", strength=1e-3, tokens=200_000), out="run")

The run directory (written whole, atomically, at every checkpoint and at the end, through `runs.write_run`):

* `config.json`         every setting (the model's and the training's), seed and package versions;
* `model.safetensors`   the model's `state_dict()` (names as in `ByteLM`; the unembedding is `tok.weight`);
* `trainer.safetensors` AdamW's moments (`m.<name>`, `v.<name>`) and its step count `t`, to resume;
* `result.json`         `step`, `done`, the training loss log, and once done the held-out loss (`test_loss`, nats per
                        byte on the test split), `wall_s` (training compute over every session) and `tokens_per_s`.

Running again into the same directory with the same settings continues from the last checkpoint (a killed run loses
at most `checkpoint_every` steps) and ends with the numbers an uninterrupted run gives: every batch is drawn from
(seed, step) alone and the optimiser state is saved. A finished run is returned as it is; other settings are
refused, so no checkpoint is overwritten by another run's.

AdamW (the project's, `optim.AdamW`) with nanoGPT's settings: betas (0.9, 0.95), weight decay on the matrices only,
gradients clipped to norm 1, linear warm-up then cosine decay.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from monosemantic.config import Seed
from monosemantic.devices import DEFAULT as DEFAULT_DEVICE, resolve
from monosemantic.errors import InputError
from monosemantic.lm.data import batch_at, check_size, eval_windows, split_bytes
from monosemantic.lm.model import ByteLM, LMConfig
from monosemantic.optim import AdamW, lr_at
from monosemantic.progress import Bar
from monosemantic.runs import check_new_dir, load_tensors, read_json, write_run

BETAS = (0.9, 0.95)
CLIP = 1.0
LOG_EVERY = 50  # steps between entries of the training-loss log


class LMTrainConfig(LMConfig):
    """A model (LMConfig's fields) and how to train it."""

    corpus: str = "fortunes"
    context: PositiveInt = 64  # bytes per training window (at most `positions`)
    batch: PositiveInt = 16
    tokens: PositiveInt = 1_000_000  # training budget in predicted bytes: steps = tokens // (batch * context)
    lr: PositiveFloat = 2e-3
    weight_decay: float = Field(default=0.1, ge=0)
    warmup: float = Field(default=0.05, ge=0, lt=1)  # share of the steps spent warming up
    eval_tokens: PositiveInt = 65_536  # test-split bytes the held-out loss is measured on
    checkpoint_every: PositiveInt = 500  # steps
    seed: Seed = 0
    device: str = DEFAULT_DEVICE

    @model_validator(mode="after")
    def _fits(self) -> LMTrainConfig:
        if self.context > self.positions:
            raise ValueError(f"context ({self.context}) is longer than the positional table (positions = "
                             f"{self.positions})")
        if self.steps < 1:
            raise ValueError(f"tokens ({self.tokens}) is less than one batch ({self.batch} x {self.context})")
        # a batch's activations kept for the backward pass (float32): residual, attention and MLP per block
        rows = self.batch * self.context
        self.check_memory(4 * rows * self.layers * (16 * self.d_model + 4 * self.neurons + 2 * self.heads * self.context))
        return self

    @property
    def steps(self) -> int:
        return self.tokens // (self.batch * self.context)

    @property
    def model(self) -> LMConfig:
        return LMConfig(**{k: getattr(self, k) for k in LMConfig.model_fields})


def _groups(model: ByteLM) -> tuple[list[str], list[str]]:
    """Parameter names with weight decay (matrices, embeddings) and without (biases, LayerNorms)."""
    names = [n for n, _ in model.named_parameters()]
    params = dict(model.named_parameters())
    return [n for n in names if params[n].ndim >= 2], [n for n in names if params[n].ndim < 2]


def _optimizers(model: ByteLM, cfg: LMTrainConfig) -> list[tuple[list[str], AdamW]]:
    params = dict(model.named_parameters())
    decay, plain = _groups(model)
    return [(decay, AdamW([params[n] for n in decay], cfg.lr, BETAS, weight_decay=cfg.weight_decay)),
            (plain, AdamW([params[n] for n in plain], cfg.lr, BETAS, weight_decay=0.0))]


def _trainer_tensors(opts) -> dict[str, torch.Tensor]:
    out = {"t": torch.tensor(opts[0][1].t)}
    for names, opt in opts:
        for n, m, v in zip(names, opt.m, opt.v):
            out[f"m.{n}"], out[f"v.{n}"] = m, v
    return out


def _load_trainer(opts, t: dict[str, torch.Tensor]) -> None:
    for names, opt in opts:
        opt.t = int(t["t"])
        for n, m, v in zip(names, opt.m, opt.v):
            m.copy_(t[f"m.{n}"])
            v.copy_(t[f"v.{n}"])


def _settings(cfg: LMTrainConfig) -> dict:
    """What must match to continue a run (the device may change between sessions)."""
    return {k: v for k, v in cfg.model_dump().items() if k != "device"}


def _resume_state(out: Path, cfg: LMTrainConfig) -> tuple[dict, dict, dict] | None:
    """(result, model tensors, trainer tensors) of a checkpoint of this run in OUT; None when OUT is absent."""
    if not out.exists():
        return None
    config = read_json(out / "config.json") if (out / "config.json").is_file() else None
    if not isinstance(config, dict) or config.get("kind") != "lm-train":
        raise InputError(f"{out} exists and is not an lm train run directory; choose another --out")
    if config.get("settings") != _settings(cfg):
        diff = [k for k, v in _settings(cfg).items() if (config.get("settings") or {}).get(k) != v]
        raise InputError(f"{out} holds a run with other settings ({', '.join(diff)}); choose another --out")
    result = read_json(out / "result.json")
    return result, load_tensors(out / "model.safetensors"), load_tensors(out / "trainer.safetensors")


@torch.no_grad()
def evaluate(model: ByteLM, windows: torch.Tensor, batch: int = 64) -> float:
    """Mean cross-entropy (nats per byte) over every predicted byte of windows: [n, context + 1]."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    total, count = 0.0, 0
    for w in windows.split(batch):
        w = w.to(device)
        logits = model(w[:, :-1])
        total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1),
                                                         reduction="sum"))
        count += w[:, 1:].numel()
    model.train(was)
    return total / count


def train(cfg: LMTrainConfig, out: str | Path | None = None, progress: bool = False,
          stop_after: int | None = None) -> dict:
    """Train (or continue, or return) the run of `cfg`; with `out`, checkpoint there. Returns result.json's content.

    stop_after: end after this many steps of this session without finishing (what a kill does, for the tests)."""
    device = resolve(cfg.device)
    train_data, test_data = split_bytes(cfg.corpus, "train"), split_bytes(cfg.corpus, "test")
    check_size(train_data, cfg.batch, cfg.context, f"the train split of corpus {cfg.corpus!r}")
    windows = eval_windows(test_data, cfg.eval_tokens, cfg.context)
    state = None
    if out is not None:
        out = Path(out)
        state = _resume_state(out, cfg)
        if state is None:
            check_new_dir(out, overwrite=False)
        elif state[0].get("done"):
            return state[0]
    model = ByteLM(cfg.model, cfg.seed)
    opts = _optimizers(model, cfg)
    result = {"step": 0, "done": False, "steps": cfg.steps, "log": [], "wall_s": 0.0}
    if state is not None:
        result = state[0]
        model.load_state_dict(state[1])
        _load_trainer(opts, state[2])
    model.to(device)
    for _, opt in opts:  # Module.to moves the parameters in place; the moments follow them
        opt.m, opt.v = [m.to(device) for m in opt.m], [v.to(device) for v in opt.v]
    config = {"kind": "lm-train", **cfg.model_dump(), "steps": cfg.steps, "settings": _settings(cfg)}

    def save() -> None:
        if out is not None:
            write_run(out, config, result, {"model": model.state_dict(), "trainer": _trainer_tensors(opts)},
                      overwrite=True)

    model.train()
    bar = Bar(cfg.steps, f"lm {cfg.variant}", result["step"]) if progress else None
    start, session = time.perf_counter(), 0
    try:
        for step in range(result["step"], cfg.steps):
            x, y = batch_at(train_data, step, cfg.seed, cfg.batch, cfg.context)
            parts = model.losses(x.to(device), y.to(device))
            model.zero_grad(set_to_none=True)
            parts["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            lr = lr_at(step, cfg.steps, cfg.lr, "cosine", int(cfg.warmup * cfg.steps))
            for _, opt in opts:
                opt.step([p.grad if p.grad is not None else torch.zeros_like(p) for p in opt.params], lr)
            if step % LOG_EVERY == 0 or step == cfg.steps - 1:
                ce = float(parts["ce"].detach())
                if not math.isfinite(ce):
                    raise InputError(f"training diverged at step {step} (loss {ce}); lower lr")
                result["log"].append({"step": step, "ce": ce, "penalty": float(parts["penalty"].detach())})
            result["step"] = step + 1
            session += 1
            if bar:
                bar.update(step + 1, f"ce {result['log'][-1]['ce']:.3f}")
            if stop_after is not None and session >= stop_after:
                result["wall_s"] += time.perf_counter() - start
                save()
                return result
            if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
                result["wall_s"] += time.perf_counter() - start
                save()
                start = time.perf_counter()
    finally:
        if bar:
            bar.close()
    result["wall_s"] += time.perf_counter() - start
    result.update(done=True, test_loss=evaluate(model, windows), test_tokens=int(windows[:, 1:].numel()),
                  tokens=cfg.steps * cfg.batch * cfg.context,
                  tokens_per_s=cfg.steps * cfg.batch * cfg.context / result["wall_s"])
    save()
    return result


def load(run_dir: str | Path, device: str = "cpu") -> tuple[ByteLM, LMTrainConfig]:
    """The model of an lm train run directory (eval mode) and its config."""
    from monosemantic.config import validate

    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    if not isinstance(config, dict) or config.get("kind") != "lm-train":
        raise InputError(f"{run_dir} is not an lm train run directory")
    cfg = validate(LMTrainConfig, {k: config[k] for k in LMTrainConfig.model_fields if k in config})
    model = ByteLM(cfg.model, cfg.seed)
    try:
        model.load_state_dict(load_tensors(run_dir / "model.safetensors"))
    except RuntimeError as e:
        raise InputError(f"{run_dir}/model.safetensors does not fit its config: {str(e).splitlines()[0]}") from None
    return model.to(resolve(device)).eval(), cfg
