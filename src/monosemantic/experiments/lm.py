"""Roads 1 and 3 on a language model trained here: what removing superposition costs in a real network.

`train_run` trains one byte LM (`lm.train`). `roads` trains every variant on the same data and token budget and
measures each on the test split:

* `lm_loss`                held-out cross-entropy, nats per byte;
* `neuron_monosemanticity` `real.features.unit_monosemanticity` of every MLP neuron (all layers), averaged over
                           the neurons that fire at least twice: 1 - the normalised entropy of the "tokens" of a
                           neuron's 32 top-activating rows. A row's token is the byte at that position together with
                           the `mono_bytes - 1` bytes before it (see `row_tokens`);
* `dead_fraction`          MLP neurons that never fire on the test rows;
* `loss_per_activation`    road 1's measure per neuron: the loss a neuron's ablation costs divided by how often it
                           fires. The ablation cost is first order (`-sum_rows dCE/dh_j * h_j`, one backward pass
                           for every neuron at once, not one forward pass per neuron); its median over live neurons;
* road 2 on the MLP        a TopK SAE at fixed L0 (`sae_k`) on site `mlp.L` (L = `sae_layer`, default the last
                           block), trained on train-split activations: its FVU on the test rows, the monosemanticity
                           of its latents (the same measure as the neurons'), and CE loss recovered when its
                           reconstruction is spliced in, `(CE_ablate - CE_splice) / (CE_ablate - CE_clean)` with the
                           site zero-ablated (`ce_recovered`).

The comparison is resumable points of the sweep machinery (`sweeps.Points`: this process, spawned local processes,
or one Ray task per point). OUT holds `config.json` (the settings), `train/NAME` (each point's `lm train` run
directory, checkpointed, so a killed point resumes mid-training), `points/NAME` (its measures, written when it ends)
and `result.json`. A rerun with the same settings computes only the missing points; other settings are refused
unless `overwrite`.
"""
from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, NonNegativeFloat, PositiveInt, field_validator, model_validator

from monosemantic.config import Strict, sae_bytes, validate
from monosemantic.lm.data import eval_windows, split_bytes
from monosemantic.lm.model import ByteLM
from monosemantic.lm.train import LMTrainConfig, evaluate, train
from monosemantic.runs import check_memory, disk_errors

MIN_L1 = 4  # strengths of the L1 sweep, at least
MIN_GAP = 1e-3  # nats per byte: a site whose ablation costs less carries nothing to recover
MIN_VARIANCE = 1e-8  # per row: activations with less (every neuron dead) have no FVU


def default_l1() -> list[float]:
    return [1e-3, 3e-3, 1e-2, 3e-2]


class MeasureConfig(Strict):
    """How every trained variant is measured."""

    measure_tokens: PositiveInt = 32_768  # test-split rows: neurons, dead, loss per activation, SAE FVU and CE
    mono_bytes: PositiveInt = Field(default=2, le=4)  # bytes in a row's token for monosemanticity (see row_tokens)
    top_k: PositiveInt = 32  # top-activating rows per unit
    sae_layer: int | None = None  # the SAE's site mlp.L (default: the last block)
    sae_latents: PositiveInt = 1024
    sae_k: PositiveInt = 32  # the SAE's fixed L0
    sae_tokens: PositiveInt = 65_536  # train-split rows it learns from
    sae_samples: PositiveInt = 131_072  # its training length


class RoadsConfig(Strict):
    """`lm roads`: every variant at the same data and token budget (`train`), measured alike (`measure`)."""

    train: LMTrainConfig = Field(default_factory=LMTrainConfig)  # the shared settings; variant and strength are set
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    l1: list[NonNegativeFloat] = Field(default_factory=default_l1, min_length=MIN_L1)
    hybrid: NonNegativeFloat = 0.1  # hybrid-joint's strength (road 3's best point on the toys)
    seeds: PositiveInt = 3  # for dense and the strongest L1; the other variants train seed 0 alone
    backend: Literal["local", "ray"] = "local"
    workers: PositiveInt = 1
    ray_address: str | None = None

    @field_validator("l1")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(s <= 0 for s in v):
            raise ValueError("L1 strengths must be positive (dense is the strength-0 model)")
        if len(set(v)) != len(v):
            raise ValueError("L1 strengths must differ")
        return sorted(v)

    @model_validator(mode="after")
    def _layer(self) -> RoadsConfig:
        if self.measure.sae_layer is not None and not 0 <= self.measure.sae_layer < self.train.layers:
            raise ValueError(f"sae_layer {self.measure.sae_layer} is not a block of the {self.train.layers}-layer "
                             f"model")
        # the measure's SAE, refused before any model trains; the widest site it reads is moe-flop's (experts x width)
        d, latents = self.train.experts * self.train.width, self.measure.sae_latents
        if not self.measure.sae_k < latents:
            raise ValueError(f"sae_k ({self.measure.sae_k}) must be below sae_latents ({latents})")
        check_memory(sae_bytes(latents, d), f"the SAE of {latents} latents on {d} MLP neurons", "lower --sae-latents")
        return self


# ---------------------------------------------------------------- one run


def train_run(cfg: LMTrainConfig, out: str | Path, progress: bool = False) -> dict:
    """`lm train`: train (or continue) the run OUT; its result."""
    return train(cfg, out, progress)


# ---------------------------------------------------------------- measures


def row_tokens(windows: torch.Tensor, n: int) -> np.ndarray:
    """The token of every predicted position of windows: [w, context + 1]: the byte there with the n - 1 bytes
    before it inside the window (257 marks 'before the window'), as one integer: [w * context] int64."""
    x = windows[:, :-1].long()  # [w, context]
    ids = x.clone()
    for i in range(1, n):
        prev = torch.full_like(x, 256)
        prev[:, i:] = x[:, :-i]
        ids = ids * 257 + prev
    return ids.reshape(-1).numpy()


def site_rows(model: ByteLM, site: str, windows: torch.Tensor, batch: int = 64) -> np.ndarray:
    """Activations at `site` for every predicted position of windows: [w * context, units] float32."""
    from monosemantic.real.model import capture

    parts = []
    with torch.no_grad(), capture(model, site) as got:
        for w in windows.split(batch):
            model(w[:, :-1])
            parts.append(got["acts"].reshape(-1, got["acts"].shape[-1]).cpu())
    return torch.cat(parts).numpy()


def first_order_ablation(model: ByteLM, windows: torch.Tensor, batch: int = 64) -> list[np.ndarray]:
    """Per layer, each MLP neuron's loss increase when it is zeroed, to first order: [neurons] float64 each."""
    from contextlib import ExitStack

    from monosemantic.real.model import replace

    L = model.cfg.layers
    totals = [None] * L
    kept: list = [None] * L

    def keeper(i):
        def keep(a):
            a.retain_grad()
            kept[i] = a
            return a
        return keep

    for w in windows.split(batch):
        with ExitStack() as stack:
            for i in range(L):
                stack.enter_context(replace(model, f"mlp.{i}", keeper(i)))
            logits = model(w[:, :-1])
            ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1),
                                                   reduction="sum")
            model.zero_grad(set_to_none=True)
            ce.backward()
        for i in range(L):
            a = kept[i].detach()
            d = -(kept[i].grad * a).reshape(-1, a.shape[-1]).sum(0).double()
            totals[i] = d if totals[i] is None else totals[i] + d
    rows = windows[:, 1:].numel()
    model.zero_grad(set_to_none=True)
    return [(t / rows).numpy() for t in totals]


def ce_recovered(ce_clean: float, ce_ablate: float, ce_splice: float) -> float:
    """(CE_ablate - CE_splice) / (CE_ablate - CE_clean): 1 when the splice is as good as the model, 0 when it is as
    bad as the ablation. NaN when ablating the site costs less than MIN_GAP (nothing to recover)."""
    gap = ce_ablate - ce_clean
    return (ce_ablate - ce_splice) / gap if gap > MIN_GAP else math.nan


def spliced_loss(model: ByteLM, site: str, windows: torch.Tensor, fn) -> float:
    from monosemantic.real.model import replace

    with replace(model, site, fn):
        return evaluate(model, windows)


def _mean(a: np.ndarray) -> float | None:
    a = a[np.isfinite(a)]
    return float(a.mean()) if len(a) else None


def measure(model: ByteLM, cfg: LMTrainConfig, m: MeasureConfig, progress: bool = False) -> dict:
    """Every measure of one trained model (see the module's doc)."""
    from monosemantic.dictionary import SparseAutoencoder
    from monosemantic.real.features import unit_monosemanticity

    t0 = time.perf_counter()
    model.eval()
    test = eval_windows(split_bytes(cfg.corpus, "test"), m.measure_tokens, cfg.context)
    tokens = row_tokens(test, m.mono_bytes)
    mono, fired, freq = [], [], []
    for i in range(cfg.layers):
        A = site_rows(model, f"mlp.{i}", test)  # [rows, neurons]
        mono.append(unit_monosemanticity([A], tokens, m.top_k))
        fired.append((A > 0).any(0))
        freq.append((A > 0).mean(0))
    mono, fired, freq = np.concatenate(mono), np.concatenate(fired), np.concatenate(freq)
    delta = np.concatenate(first_order_ablation(model, test))
    live = freq > 0
    per_act = delta[live] / freq[live]

    site = f"mlp.{cfg.layers - 1 if m.sae_layer is None else m.sae_layer}"  # checked by RoadsConfig
    X = site_rows(model, site, eval_windows(split_bytes(cfg.corpus, "train"), m.sae_tokens, cfg.context))
    sae = SparseAutoencoder("topk", m.sae_latents, k=m.sae_k, samples=m.sae_samples, seed=cfg.seed,
                            progress=progress).fit(X)
    module = sae.module()
    Xt = torch.from_numpy(site_rows(model, site, test))
    with torch.no_grad():
        codes = module.encode(Xt)
        Xh = module.decode(codes)
    var = float(((Xt - Xt.mean(0)) ** 2).sum())
    fvu = float(((Xt - Xh) ** 2).sum()) / var if var > MIN_VARIANCE * len(Xt) else math.nan
    sae_mono = unit_monosemanticity([codes], tokens, m.top_k)

    def splice(a: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(a)

    clean = evaluate(model, test)
    ablate = spliced_loss(model, site, test, torch.zeros_like)
    spliced = spliced_loss(model, site, test, splice)
    return {
        "neurons": int(len(mono)), "neuron_monosemanticity": _mean(mono),
        "neuron_monosemanticity_by_layer": [_mean(x) for x in np.split(mono, cfg.layers)],
        "dead": int((~fired).sum()), "dead_fraction": float((~fired).mean()),
        "activation_frequency_mean": float(freq.mean()),
        "loss_per_activation_median": float(np.median(per_act)) if len(per_act) else None,
        "ablation_loss_sum": float(delta.sum()),
        "sae_site": site, "sae_latents": m.sae_latents, "sae_k": m.sae_k, "sae_fvu": fvu,
        "sae_l0": float((codes != 0).sum(1).float().mean()),
        "sae_monosemanticity": _mean(sae_mono), "sae_dead": int(((codes != 0).sum(0) == 0).sum()),
        "ce_clean": clean, "ce_zero_ablation": ablate, "ce_splice": spliced,
        "ce_recovered": ce_recovered(clean, ablate, spliced),
        "measure_rows": int(len(tokens)), "measure_s": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------- the comparison


def points(cfg: RoadsConfig) -> list[dict]:
    """Every (variant, strength, seed) of the comparison, named: [{"name", "variant", "strength", "seed"}]. Seed 0 of
    every variant comes first, then the further seeds of dense and the strongest L1: a run cut short has one point of
    each variant before it has error bars."""
    pts = [("dense", 0.0, 0), *[("l1", x, 0) for x in cfg.l1], ("moe-flop", 0.0, 0), ("moe-width", 0.0, 0),
           ("hybrid-joint", cfg.hybrid, 0)]
    pts += [(v, x, s) for s in range(1, cfg.seeds) for v, x in (("dense", 0.0), ("l1", cfg.l1[-1]))]
    return [{"name": f"{v}-s{s}" if not x else f"{v}-{x:g}-s{s}", "variant": v, "strength": x, "seed": s}
            for v, x, s in pts]


def point_config(cfg: RoadsConfig, pt: dict) -> LMTrainConfig:
    return validate(LMTrainConfig, {**cfg.train.model_dump(), "variant": pt["variant"], "strength": pt["strength"],
                                    "seed": pt["seed"]})


def run_point(train_cfg: dict, measure_cfg: dict, train_dir: str) -> list[dict]:
    """One point's job (in a worker): train or resume the lm train run TRAIN_DIR, measure it. Returns the point's
    record as `sweeps.Points` takes it (no tensors: the model stays in TRAIN_DIR)."""
    from monosemantic.lm.train import load

    cfg, m = LMTrainConfig(**train_cfg), MeasureConfig(**measure_cfg)
    res = train(cfg, train_dir)
    model, _ = load(train_dir)
    record = {"lm_loss": res["test_loss"], "train_wall_s": res["wall_s"], "tokens": res["tokens"],
              "tokens_per_s": res["tokens_per_s"], **measure(model, cfg, m)}
    return [{"result": record, "tensors": {}}]


def _std(v: list[float]) -> float | None:
    return statistics.stdev(v) if len(v) > 1 else None


def table(pts: list[dict], records: list[dict]) -> list[dict]:
    """One row per (variant, strength): means over seeds, and the seed spread (sample std) of the loss."""
    rows: dict[tuple, list] = {}
    for pt, rec in zip(pts, records):
        rows.setdefault((pt["variant"], pt["strength"]), []).append(rec)

    def mean(recs, key):
        v = [r[key] for r in recs if r[key] is not None and math.isfinite(r[key])]
        return statistics.fmean(v) if v else None

    out = []
    for (variant, strength), recs in rows.items():
        mono = [r["neuron_monosemanticity"] for r in recs if r["neuron_monosemanticity"] is not None]
        out.append({"variant": variant, "strength": strength, "seeds": len(recs),
                    "lm_loss": mean(recs, "lm_loss"), "lm_loss_std": _std([r["lm_loss"] for r in recs]),
                    "neuron_monosemanticity": mean(recs, "neuron_monosemanticity"),
                    "neuron_monosemanticity_std": _std(mono),
                    "sae_fvu": mean(recs, "sae_fvu"), "ce_recovered": mean(recs, "ce_recovered"),
                    "sae_monosemanticity": mean(recs, "sae_monosemanticity"),
                    "dead_fraction": mean(recs, "dead_fraction"),
                    "loss_per_activation_median": mean(recs, "loss_per_activation_median")})
    return out


def findings(rows: list[dict]) -> dict:
    """The questions of the comparison, answered from the table (numbers, no adjectives)."""
    by = {(r["variant"], r["strength"]): r for r in rows}
    dense = by[("dense", 0.0)]
    l1 = sorted((r for r in rows if r["variant"] == "l1"), key=lambda r: r["strength"])
    top = l1[-1]
    spread = max(dense["neuron_monosemanticity_std"] or 0.0, top["neuron_monosemanticity_std"] or 0.0)
    gain = top["neuron_monosemanticity"] - dense["neuron_monosemanticity"]
    monos = [dense["neuron_monosemanticity"]] + [r["neuron_monosemanticity"] for r in l1]
    steps = [b - a for a, b in zip(monos, monos[1:])]
    moe = {v: {"loss_vs_dense": by[(v, 0.0)]["lm_loss"] - dense["lm_loss"],
               "monosemanticity_vs_dense": by[(v, 0.0)]["neuron_monosemanticity"] - dense["neuron_monosemanticity"]}
           for v in ("moe-flop", "moe-width") if (v, 0.0) in by}
    best = max(l1, key=lambda r: r["neuron_monosemanticity"] if r["neuron_monosemanticity"] is not None else -1)
    return {
        "most_monosemantic_l1": best["strength"],
        "most_monosemantic_l1_gain": best["neuron_monosemanticity"] - dense["neuron_monosemanticity"],
        "most_monosemantic_l1_cost_nats": best["lm_loss"] - dense["lm_loss"],
        "strongest_l1": top["strength"],
        "l1_monosemanticity_gain": gain,
        "seed_spread": spread,
        "l1_raises_monosemanticity": bool(gain > 2 * spread and gain > 0),
        "l1_cost_nats": top["lm_loss"] - dense["lm_loss"],
        "l1_monosemanticity_steps": steps,  # between neighbouring strengths, dense first
        "moe": moe,
    }


def roads(cfg: RoadsConfig, out: str | Path, progress: bool = False, on_point=None, overwrite: bool = False) -> dict:
    """Run (or finish) the comparison in OUT; returns result.json's content (also written there).

    on_point(done, total): called after each point is measured and written (the tests' interruption); total counts
    the points this call computes. overwrite: replace OUT when it holds another run."""
    from monosemantic.experiments.sweeps import Points, key_of

    pts = points(cfg)
    configs = [point_config(cfg, pt) for pt in pts]  # every point validated before anything is written
    split_bytes(cfg.train.corpus, "train")  # the corpus is read (and checked) before OUT is made
    spec = cfg.model_dump(mode="json", exclude={"backend", "workers", "ray_address"})
    measure_cfg = cfg.measure.model_dump()
    start = time.perf_counter()
    with Points(out, "lm-roads", spec, overwrite, cfg.backend, cfg.workers, cfg.ray_address) as run:
        with disk_errors(run.out):  # made here, not by the workers at once
            (run.out / "train").mkdir(exist_ok=True)
        jobs = [{"args": (c.model_dump(), measure_cfg, str(run.out / "train" / pt["name"])),
                 "points": [{"name": pt["name"], "key": key_of({"train": c.model_dump(), "measure": measure_cfg})}]}
                for pt, c in zip(pts, configs)]
        got = run.run(jobs, run_point, progress, "lm roads", on_point)
        records = [got[pt["name"]]["result"] for pt in pts]
        rows = table(pts, records)
        result = {"points": [{**pt, **r} for pt, r in zip(pts, records)], "table": rows, "findings": findings(rows),
                  "config": spec, "wall_s": sum(r["train_wall_s"] + r["measure_s"] for r in records),
                  "elapsed_s": time.perf_counter() - start}
        run.finish(result, {})
    return result


def lines(result: dict) -> list[str]:
    """The table as printed by `lm roads`."""
    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    out = [f"{'variant':<13} {'strength':>8} {'seeds':>5} {'loss (nats/byte)':>18} {'mono':>6} {'SAE FVU':>8} "
           f"{'CE rec':>7} {'dead':>6}"]
    for r in result["table"]:
        loss = f"{r['lm_loss']:.4f}" + (f" ± {r['lm_loss_std']:.4f}" if r["lm_loss_std"] is not None else "")
        out.append(f"{r['variant']:<13} {r['strength']:>8g} {r['seeds']:>5} {loss:>18} "
                   f"{f(r['neuron_monosemanticity'], '.3f'):>6} {f(r['sae_fvu'], '.3f'):>8} "
                   f"{f(r['ce_recovered'], '.3f'):>7} {f(r['dead_fraction'], '.2f'):>6}")
    return out


# ---------------------------------------------------------------- the report's section


def demo_config(quick: bool) -> RoadsConfig:
    """A tiny model and budget (the documented comparison is `RoadsConfig()`) on two local workers; quick: a smoke
    test of the pipeline (a smaller model, a few steps, in this process)."""
    if quick:
        train = LMTrainConfig(layers=1, d_model=32, heads=2, width=64, positions=16, context=16, batch=16,
                              tokens=4_096, eval_tokens=1_024, joint_latents=128, joint_k=8, joint_rows=64)
        measure = MeasureConfig(measure_tokens=1_024, sae_latents=64, sae_k=8, sae_tokens=1_024, sae_samples=1_024)
        return RoadsConfig(train=train, measure=measure, seeds=2)
    train = LMTrainConfig(layers=1, d_model=64, heads=4, width=256, positions=32, context=32, batch=32,
                          tokens=160_000, eval_tokens=8_192, joint_latents=512, joint_k=16, joint_rows=128,
                          checkpoint_every=10_000)
    measure = MeasureConfig(measure_tokens=8_192, sae_latents=512, sae_k=16, sae_tokens=8_192, sae_samples=32_768)
    return RoadsConfig(train=train, measure=measure, workers=2)


def demo(quick: bool, progress: bool) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="monosemantic-lm-") as work:
        return roads(demo_config(quick), Path(work) / "roads", progress)
