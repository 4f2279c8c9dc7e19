"""SAELens's directory format (sae-lens >= 6): what a saved SAE writes, and how a SAELens directory is read.

A directory holds `cfg.json` and `sae_weights.safetensors`, the tensors in the cfg's dtype:

    W_enc: [d_in, d_sae]   b_enc: [d_sae]   W_dec: [d_sae, d_in]   b_dec: [d_in]   threshold: [d_sae] (jumprelu)

cfg.json: `architecture` (standard | topk | jumprelu), `d_in`, `d_sae`, `dtype`, `device`, `apply_b_dec_to_input`,
`normalize_activations`, `reshape_activations`, `metadata` (an object with `sae_lens_version`), and for topk `k` and
`rescale_acts_by_decoder_norm`. Written here: `apply_b_dec_to_input` true, no normalisation, and a `monosemantic`
object SAELens ignores (our training parameters; BatchTopK is written as SAELens writes it, a jumprelu with its
threshold, and `monosemantic.params.arch` brings it back as a batchtopk).

Reading follows SAELens's inference (`SAE.load_from_disk`, then `encode`/`decode`):

    pre = (x - b_dec * apply_b_dec_to_input) @ W_enc + b_enc     (topk with rescale_acts_by_decoder_norm: * |W_dec_i|)
    f   = ReLU(pre) | TopK(pre, k) | ReLU(pre) * [pre > threshold]
    x^  = f @ W_dec + b_dec                                      (rescaled: f / |W_dec_i| @ W_dec + b_dec)

Both options are folded into our parametrisation pre = (x - b_dec) @ W_enc + b_enc, exactly (in float64):
apply_b_dec_to_input false adds b_dec @ W_enc to b_enc; rescaling multiplies W_enc's columns and b_enc by the
decoder row norms and divides the rows by them. The codes and reconstructions are then SAELens's own. Settings
that change the maths in a way the codes alone cannot carry are refused with one line: per-sample or
unfolded normalisations, hook_z reshaping, other architectures, and weights the architecture does not have.
Never unpickles: safetensors and JSON only.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from monosemantic.dictionary import archs
from monosemantic.errors import InputError

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"
# The SAELens release whose format this follows and is tested against (a round trip through SAELens itself).
# SAELens reads a cfg.json without a 6.x sae_lens_version as a pre-6 one.
FORMAT_VERSION = "6.54.12"
READS = ("standard", "topk", "jumprelu")  # SAELens's inference architectures read here
LEGACY_ACTIVATIONS = {"topk": "topk"}  # a pre-6 cfg's activation_fn (with activation_fn_kwargs.k) -> architecture
NORMALIZE_WHY = {
    "expected_average_only_in": "its scaling factor is not in the directory; fold it into the weights first "
                                "(SAELens: sae.fold_activation_norm_scaling_factor) and save with 'none'",
    "constant_norm_rescale": "it rescales each sample at run time, so codes alone could not be decoded",
    "layer_norm": "it normalises each sample at run time, so codes alone could not be decoded",
    "covariance_whitening": "fold the whitening into the weights first (SAELens: sae.fold_activation_whitening) "
                            "and save with 'none'",
}


def cfg(architecture: str, d_in: int, d_sae: int, device: str, arch_fields: dict, ours: dict) -> dict:
    """cfg.json of an SAE we save, in SAELens 6's keys (`ours`: the `monosemantic` object SAELens ignores)."""
    return {"architecture": architecture, "d_in": int(d_in), "d_sae": int(d_sae), "dtype": "float32",
            "device": device, "apply_b_dec_to_input": True, "normalize_activations": "none",
            "reshape_activations": "none", **arch_fields, "metadata": {"sae_lens_version": FORMAT_VERSION},
            "monosemantic": ours}


def _version_major(cfg: dict) -> int:
    v = cfg.get("sae_lens_version") or (cfg.get("metadata") or {}).get("sae_lens_version")
    try:
        return int(str(v).split(".")[0])
    except ValueError:
        return 0


def _legacy(cfg: dict) -> dict:
    """What SAELens does to a pre-6 cfg.json that matters for the maths: an `activation_fn` topk with its k, and
    a boolean `normalize_activations`."""
    cfg = dict(cfg)
    kw = cfg.get("activation_fn_kwargs") or {}
    act = cfg.get("activation_fn", cfg.get("activation_fn_str"))
    if act in LEGACY_ACTIVATIONS and isinstance(kw, dict) and "k" in kw:
        cfg.update(architecture=LEGACY_ACTIVATIONS[act], k=kw["k"])
    norm = cfg.get("normalize_activations")
    if norm is None or isinstance(norm, bool):
        cfg["normalize_activations"] = "expected_average_only_in" if norm else "none"
    act = cfg.get("activation_fn", cfg.get("activation_fn_str", "relu"))
    if cfg.get("architecture", "standard") == "standard" and act not in ("relu", None):
        raise InputError(f"activation_fn {act!r} is not supported (a pre-6 SAELens standard SAE must use relu)")
    return cfg


def read(path: Path, cfg, w: dict[str, torch.Tensor]) -> tuple[type[archs.Arch], dict, dict, torch.Tensor | None]:
    """A SAELens-format directory's SAE in our parametrisation, checked against what can be reproduced exactly.

    Returns our architecture, the cfg (a pre-6 one brought to 6's keys as SAELens does), the params (`fold`) and
    the threshold ([d_sae], or None). Raises InputError, one line naming the setting or the tensor."""
    where = f"{path}/{CFG}"
    if not isinstance(cfg, dict):
        raise InputError(f"{where} must be a JSON object")
    try:
        cfg = _legacy(cfg) if _version_major(cfg) < 6 else cfg
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    architecture = cfg.get("architecture", "standard")
    mine = cfg.get("monosemantic")
    ours = mine.get("params", {}).get("arch") if isinstance(mine, dict) and isinstance(mine.get("params"), dict) else None
    arch = archs.from_saelens(architecture, ours) if isinstance(architecture, str) else None
    if arch is None:
        raise InputError(f"{where}: architecture {architecture!r} is not supported (this loader reads SAELens's "
                         f"{', '.join(READS)})")
    apply = cfg.get("apply_b_dec_to_input", True)
    if not isinstance(apply, bool):
        raise InputError(f"{where}: apply_b_dec_to_input must be true or false, got {apply!r}")
    norm = cfg.get("normalize_activations", "none")
    if norm != "none":
        raise InputError(f"{where}: normalize_activations {norm!r} is not supported "
                         f"({NORMALIZE_WHY.get(norm, 'not a SAELens setting') if isinstance(norm, str) else 'not a name'})")
    reshape = cfg.get("reshape_activations", "none")
    if reshape != "none":
        raise InputError(f"{where}: reshape_activations {reshape!r} is not supported (rows here are flat "
                         f"activations; only 'none')")
    rescale = cfg.get("rescale_acts_by_decoder_norm", False) if arch.saelens_rescale else False
    if not isinstance(rescale, bool):
        raise InputError(f"{where}: rescale_acts_by_decoder_norm must be true or false, got {rescale!r}")
    w = dict(w)
    if "scaling_factor" in w and torch.equal(w["scaling_factor"], torch.ones_like(w["scaling_factor"])):
        del w["scaling_factor"]  # SAELens drops an all-ones finetuning scale too
    known = {"W_enc", "b_enc", "W_dec", "b_dec"} | ({"threshold"} if arch.threshold_weight else set())
    extra = sorted(set(w) - known)
    if extra:
        raise InputError(f"{path}/{WEIGHTS} holds {', '.join(extra)}, which a SAELens {architecture} SAE does not "
                         f"have (not supported)")
    missing = sorted(known - set(w))
    if missing:
        raise InputError(f"{path}/{WEIGHTS} lacks {', '.join(missing)}")
    _check_tensors(path, cfg, w)
    if rescale and not bool((w["W_dec"].double().norm(dim=1) > 0).all()):
        raise InputError(f"{where}: rescale_acts_by_decoder_norm is true but W_dec has a zero row (SAELens would "
                         f"divide by its norm)")
    return arch, cfg, fold(w, apply, rescale), w["threshold"].float() if arch.threshold_weight else None


def _check_tensors(path: Path, cfg: dict, w: dict[str, torch.Tensor]) -> None:
    """Shapes as the module's docstring says, agreeing with d_in, d_sae and dtype; finite floats."""
    d_in, d_sae = w["W_enc"].shape if w["W_enc"].ndim == 2 else (None, None)
    want = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,), "threshold": (d_sae,)}
    for name, t in w.items():
        if tuple(t.shape) != want[name]:
            raise InputError(f"{path}/{WEIGHTS}: {name} has shape {list(t.shape)}, want {list(want[name])}")
        if not t.is_floating_point():
            raise InputError(f"{path}/{WEIGHTS}: {name} is {t.dtype}, not a float tensor")
        if not torch.isfinite(t.float()).all():
            raise InputError(f"{path}/{WEIGHTS}: {name} has NaN or Inf")
    for key, have in (("d_in", d_in), ("d_sae", d_sae)):
        if key in cfg and cfg[key] != have:
            raise InputError(f"{path}/{CFG} says {key}={cfg[key]} but {WEIGHTS} has {have}")
    dtype = str(cfg.get("dtype", "float32")).removeprefix("torch.")
    for name, t in w.items():
        if dtype != str(t.dtype).removeprefix("torch."):
            raise InputError(f"{path}/{CFG} says dtype {dtype} but {WEIGHTS} holds {name} as {t.dtype}")


@torch.no_grad()
def fold(w: dict[str, torch.Tensor], apply_b_dec_to_input: bool, rescale: bool) -> dict[str, torch.Tensor]:
    """SAELens's weights as ours: pre = (x - b_dec) @ W_enc + b_enc with the same codes and reconstructions
    (see the module's docstring). Returns W_enc_T: [d_sae, d_in], b_enc, W_dec, b_dec (float32)."""
    W_enc, b_enc, W_dec, b_dec = (w[k].double() for k in ("W_enc", "b_enc", "W_dec", "b_dec"))
    if not apply_b_dec_to_input:  # x @ W_enc + b_enc = (x - b_dec) @ W_enc + (b_enc + b_dec @ W_enc)
        b_enc = b_enc + b_dec @ W_enc
    if rescale:  # pre * n and f / n: the norms move into the encoder, the decoder rows become unit vectors
        n = W_dec.norm(dim=1)  # [d_sae]
        W_enc, b_enc, W_dec = W_enc * n, b_enc * n, W_dec / n[:, None]
    return {"W_enc_T": W_enc.T.float().contiguous(), "b_enc": b_enc.float(), "W_dec": W_dec.float().contiguous(),
            "b_dec": b_dec.float()}


# ---------------------------------------------------------------- SAELens itself, when installed

INSTALL = "pip install 'monosemantic[bench]' (SAELens)"
PEER_BATCH = 1024  # the peers' settings: batch 1024, lr 1e-3 constant, SAELens's defaults otherwise
PEER_LR = 1e-3


def installed() -> bool:
    """Whether SAELens can be imported here (the `bench` extra)."""
    import importlib.util

    return importlib.util.find_spec("sae_lens") is not None


def train_topk(X, latents: int, k: int, samples: int, out: str | Path, seed: int = 0,
               batch: int = PEER_BATCH, lr: float = PEER_LR, progress: bool = False) -> dict:
    """Train SAELens's own TopK SAE on the rows of `X: [rows, d]` (an array or a store's rows, read a batch at a
    time in a seeded shuffled order) with the peers' settings, save it with SAELens's `save_inference_model`
    into OUT and return {version, train_s, samples}. Read OUT back with `monosemantic.dictionary.load`.
    progress: SAELens's own progress bar (hidden otherwise)."""
    import contextlib
    import time

    import numpy as np

    if not installed():
        raise InputError(f"SAELens is not installed: {INSTALL}")
    import sae_lens
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig

    rows, d = X.shape
    batch = max(1, min(batch, samples, rows))  # a slice smaller than a batch still trains
    rng = np.random.default_rng(seed)
    read_s = [0.0]

    def batches():
        while True:
            perm = rng.permutation(rows)
            for s in range(0, rows - batch + 1, batch):
                t = time.perf_counter()
                x = torch.from_numpy(np.asarray(X[np.sort(perm[s:s + batch])], dtype=np.float32))
                read_s[0] += time.perf_counter() - t
                yield x

    torch.manual_seed(seed)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=latents, k=k, device="cpu"))
    cfg = SAETrainerConfig(total_training_samples=samples // batch * batch, train_batch_size_samples=batch, lr=lr,
                           lr_end=lr, lr_scheduler_name="constant", device="cpu",
                           logger=LoggingConfig(log_to_wandb=False), n_checkpoints=0, save_final_checkpoint=False)
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=batches())
    t = time.perf_counter()
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(sys.stderr if progress else null):
        trainer.fit()
    wall = time.perf_counter() - t
    Path(out).mkdir(parents=True, exist_ok=True)
    sae.save_inference_model(str(out))
    return {"version": sae_lens.__version__, "train_s": wall - read_s[0], "samples": int(trainer.n_training_samples)}
