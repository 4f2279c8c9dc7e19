"""`SparseAutoencoder`: the scikit-learn-style estimator around the SAE architectures of `archs/`.

    sae = SparseAutoencoder(arch="topk", n_latents=512, k=5).fit(X)     # X: [samples, d] array/tensor/memmap/iterator
    codes = sae.transform(X)          # scipy CSR [samples, n_latents] (output="torch": a torch sparse CSR tensor)
    X_hat = sae.inverse_transform(codes)
    sae.score(X)                      # 1 - FVU, higher is better (scikit-learn's convention)
    sae.components_                   # the atoms, W_dec: [n_latents, d]
    sae.save("dir"); SparseAutoencoder.load("dir")
    sae.module()                      # a torch.nn.Module (encode, decode, forward) on the same tensors

`device` (cpu, cuda, cuda:N, auto) is where the parameters, optimiser state and counters live; batches are drawn
on the CPU and uploaded, and the initialisation is drawn on the CPU, so a seed starts the same on every device.
`dtype="bfloat16"` (a GPU only) runs the training step's matmuls in bfloat16 on float32 parameters.

The saved directory is SAELens's layout: `cfg.json` and `sae_weights.safetensors` with
W_enc: [d_in, d_sae], b_enc: [d_sae], W_dec: [d_sae, d_in], b_dec: [d_in], and `threshold: [d_sae]` for
JumpReLU and BatchTopK (whose inference is a per-latent threshold). A fit with `checkpoint=DIR` also
writes the optimiser state there every `checkpoint_every` steps and resumes from it when restarted.

Training, in the order it helps recovery on ground-truth data (measured in benchmarks/dictionary.py):
decoder bias at the geometric median of a data sample; encoder initialised as the decoder's transpose;
Adam with a short warm-up and cosine decay to zero; latents that stop firing are resampled towards the
worst-reconstructed samples of the batch (encoder rows at a fifth of the live ones' norm, Adam moments reset),
and for TopK/BatchTopK an auxiliary loss (OpenAI's AuxK) also trains dead latents, and restarts that have not
fired yet, on the residual.
"""
from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from monosemantic.devices import check_dtype, resolve, synchronize
from monosemantic.errors import InputError
from monosemantic._version import __version__
from monosemantic.dictionary import archs, saelens
from monosemantic.dictionary.archs.base import EPS, encode_pre, geometric_median
from monosemantic.data import to_output
from monosemantic.dictionary.base import DictionaryEstimator
from monosemantic.dictionary.batches import Batches
from monosemantic.runs import (check_output_path, json_files, load_tensors, read_json, save_tensors, tidy_leftovers,
                              write_dir, write_json)
from monosemantic.progress import Bar
from monosemantic.optim import AdamW, lr_at

# Defaults, chosen on the section-5 data (512 features, d 128) and checked on other sizes in the tests.
DEFAULT_SAMPLES = 3_000_000  # training samples; several passes over a 100k-sample set
HISTORY_POINTS = 200  # training-history records per fit when history_every is None
HISTORY_KEYS = ("step", "samples", "loss", "mse", "fvu", "l0", "dead", "resampled")
WEIGHTS = saelens.WEIGHTS
TRAINER = "trainer_state.safetensors"
# a restarted latent's encoder norm, as a share of the live latents' mean: a restart duplicating a live latent, or
# pointing at one sample's noise, then adds a fifth of its value where it fires (at full size, resampling the
# sparse MLP activations of an L1 byte LM raised the TopK SAE's FVU from 0.03 to 0.06)
RESTART_SCALE = 0.2


def _fresh_state(n_latents: int) -> dict[str, torch.Tensor]:
    """Per-latent training counters, all zero: firings since the last resampling, samples since the last firing,
    dead (for AuxK), and fresh (resampled last time)."""
    return {"fired": torch.zeros(n_latents, dtype=torch.long), "dead": torch.zeros(n_latents, dtype=torch.bool),
            "since": torch.zeros(n_latents, dtype=torch.long), "fresh": torch.zeros(n_latents, dtype=torch.bool)}


class SparseAutoencoder(DictionaryEstimator):
    """A sparse autoencoder: arch names one of `archs.ARCHS` (relu | topk | batchtopk | jumprelu).

    n_latents: dictionary size (d_sae). k: active latents per sample (topk; batchtopk on average).
    l1: L1 coefficient of relu (weighted by decoder row norms); l0: L0 coefficient of jumprelu.
    samples: training length in samples (fit). batch: samples per step. lr: Adam's peak learning rate
    (None: scaled from the size, see `_lr`), warmup: share of the steps to warm up over, then cosine decay to 0.
    resample_every: steps between resamplings (0: never), which stop after `resample_until` of the run; a latent
    firing at less than `dead_frac` of the mean latent's rate over the window is resampled. aux_coef: weight of the AuxK loss
    (topk/batchtopk) on latents silent for `dead_after` samples; aux_k: its k (None: 2 k).
    history_every: steps between the training-history records of `history_` (None: about HISTORY_POINTS records
    per fit; 0: none).

    After a fit, `history_` holds lists keyed step, samples, loss (the training objective), mse, fvu, l0 (each the
    mean over the steps since the previous record), dead (latents silent for the last `dead_after` samples, and
    restarts that have not fired yet) and resampled (latent restarts so far).
    """

    def __init__(self, arch: str = "topk", n_latents: int = 512, k: int = 5, l1: float | None = None,
                 l0: float = 0.01, bandwidth: float = 0.05, samples: int = DEFAULT_SAMPLES, batch: int = 256,
                 lr: float | None = None, warmup: float = 0.02, resample_every: int = 50,
                 resample_until: float = 0.8, init_rate: float = 0.02, dead_frac: float = 0.1,
                 dead_after: int = 100_000, aux_coef: float = 1 / 32, aux_k: int | None = None, seed: int = 0,
                 progress: bool = False, checkpoint: str | None = None, checkpoint_every: int = 1000,
                 device: str = "cpu", dtype: str = "float32", history_every: int | None = None):
        self.arch = arch
        self.n_latents = n_latents
        self.k = k
        self.l1 = l1
        self.l0 = l0
        self.bandwidth = bandwidth
        self.samples = samples
        self.batch = batch
        self.lr = lr
        self.warmup = warmup
        self.resample_every = resample_every
        self.resample_until = resample_until
        self.dead_frac = dead_frac
        self.init_rate = init_rate
        self.dead_after = dead_after
        self.aux_coef = aux_coef
        self.aux_k = aux_k
        self.seed = seed
        self.progress = progress
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.device = device
        self.dtype = dtype
        self.history_every = history_every

    # ------------------------------------------------------------ checks and helpers

    def _arch(self) -> archs.Arch:
        """The architecture with this estimator's hyper-parameters (made once per fit or transform, not per step)."""
        return archs.get(self.arch)(k=self.k, l1=self.l1, l0=self.l0, bandwidth=self.bandwidth)

    def _check(self) -> None:
        arch = self._arch()
        for name in ("n_latents", "batch", "samples"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        arch.check(self.n_latents)
        for name in ("l0", "bandwidth", "aux_coef"):
            if not getattr(self, name) >= 0:
                raise InputError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.l1 is not None and not self.l1 >= 0:
            raise InputError(f"l1 must be non-negative, got {self.l1}")
        if self.history_every is not None and (not isinstance(self.history_every, (int, np.integer))
                                               or self.history_every < 0):
            raise InputError(f"history_every must be a non-negative integer or None, got {self.history_every!r}")
        if self.lr is not None and not self.lr > 0:
            raise InputError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.warmup < 1 or not 0 <= self.resample_until <= 1:
            raise InputError("warmup must lie in [0, 1) and resample_until in [0, 1]")
        check_dtype(self.dtype, resolve(self.device))

    def _lr(self) -> float:
        if self.lr is not None:
            return self.lr
        # Adam's steps are ~lr per weight; the decoder rows are unit vectors in d_in dims, so a step that moves
        # a row by a fixed angle scales as 1/sqrt(d_in). Chosen at d_in 128 (section-5 data).
        return 4e-3 * math.sqrt(128 / self.d_in_)

    @property
    def _penalty(self) -> float:
        return self._arch().penalty

    def own_solver(self, codes) -> tuple[str, dict, float]:
        """The unfolding that codes for this SAE's decoder under its own objective, given the encoder's codes:
        (sensing method, its keyword arguments, the objective's L1 weight); see `archs.base.Arch.solver`."""
        return self._arch().solver(codes)

    @property
    def components_(self) -> np.ndarray:
        """The atoms (decoder rows): [n_latents, d_in]."""
        self._fitted()
        return self.params_["W_dec"].cpu().numpy().copy()

    @property
    def mean_(self) -> np.ndarray:
        """The decoder bias b_dec: [d_in] (what the reconstruction adds to codes @ components_)."""
        return self.params_["b_dec"].cpu().numpy()

    @property
    def kind(self) -> str:
        return self.arch

    def _fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise InputError("this SparseAutoencoder is not fitted yet (call fit, partial_fit or load)")

    def _to_device(self) -> None:
        """Parameters and counters onto `device` (resolved once: device_ names where they are)."""
        self.device_ = resolve(self.device)
        self.params_ = {k: v.to(self.device_) for k, v in self.params_.items()}
        self.state_ = {k: v.to(self.device_) for k, v in self.state_.items()}

    def module(self):
        """This SAE as a torch.nn.Module (`SAEModule`): encode, decode, forward = the reconstruction. Its W_enc,
        b_enc, W_dec, b_dec (and JumpReLU's log_theta) are the estimator's tensors (fitting moves the module,
        autograd on the module moves the estimator) until `.to()` gives it copies; BatchTopK's threshold is a copy."""
        from monosemantic.dictionary.module import SAEModule

        self._fitted()
        return SAEModule(self._arch(), self.params_, self._arch().threshold(self.params_, self.state_))

    def _new_optimizer(self) -> None:
        """A fresh Adam (zero moments) over params_ at the peak learning rate."""
        self.opt_ = AdamW(list(self.params_.values()), lr=self._lr(), weight_decay=0.0)

    # ------------------------------------------------------------ training

    def _init(self, batches: Batches) -> None:
        self._check()
        sample = batches.sample(8192)
        self.d_in_ = sample.shape[1]
        gen = torch.Generator().manual_seed(self.seed)
        arch = self._arch()
        self.params_ = arch.init_params(self.d_in_, self.n_latents, geometric_median(sample), gen)
        arch.init_from_data(self.params_, encode_pre(sample[:2048], self.params_), self.init_rate)
        self.step_ = 0
        self.state_ = _fresh_state(self.n_latents)
        arch.init_state(self.state_)
        self._to_device()
        self._new_optimizer()
        self._gen = gen
        self.train_seconds_, self.n_resampled_ = 0.0, 0
        self.history_ = {key: [] for key in HISTORY_KEYS}
        self._data_var = total_variance(sample)

    def fit(self, X, y=None, callback=None, eval_every: int = 0) -> SparseAutoencoder:
        """Train for `samples` samples with the full schedule; resumes from `checkpoint` when it holds a run.

        callback(self, step, samples_seen, train_seconds) is called every `eval_every` steps (its own time is not
        counted): the benchmark and the report score held-out data there.
        """
        self._check()
        steps = max(1, self.samples // self.batch)
        batches = Batches(X, self.batch, self.seed)
        self._data_fp = data_fingerprint(batches.X) if batches.it is None else None
        resumed = self.checkpoint is not None and self._try_resume(Path(self.checkpoint))
        if not resumed:
            self._init(batches)
        if batches.it is None:  # an array: a resumed fit goes on with the batches the interrupted one had next
            batches.step = self.step_
        self._run(batches, steps, callback, eval_every)
        return self

    def partial_fit(self, X, y=None) -> SparseAutoencoder:
        """One pass over X in batches of `batch` at the peak learning rate (no schedule); initialises on first call."""
        batches = Batches(X, min(self.batch, len(X)) if hasattr(X, "__len__") else self.batch, self.seed)
        if not hasattr(self, "params_"):
            self._init(batches)
        n = (batches.per_pass if batches.it is None else None)
        self._run(batches, None, None, 0, n_steps=n)
        return self

    def _run(self, batches: Batches, steps: int | None, callback, eval_every: int, n_steps: int | None = None) -> None:
        if batches.d is not None and batches.d != self.d_in_:
            raise InputError(f"data have d={batches.d} but the SAE was built for d={self.d_in_}")
        lr_peak = self._lr()
        warm = int(self.warmup * steps) if steps else 0
        aux_k = self.aux_k or 2 * self.k
        arch = self._arch()
        unit = arch.unit_decoder
        compute = check_dtype(self.dtype, self.device_)  # bfloat16: the step on bfloat16 copies of the weights
        bar = Bar(steps, f"sae {self.arch}") if self.progress and steps else None
        stop = steps if steps is not None else self.step_ + (n_steps or 10 ** 12)
        every = self._history_every(steps)
        window = _Window()
        if every and not hasattr(self, "history_"):  # loaded from a saved directory: the history starts here
            self.history_ = {key: [] for key in HISTORY_KEYS}
        if every and not hasattr(self, "_data_var"):
            self._data_var = total_variance(batches.sample(8192))
        t_train = 0.0
        try:
            while self.step_ < stop:
                try:
                    x = next(batches)
                except StopIteration:
                    break
                t0 = time.perf_counter()
                x = x.to(self.device_)
                lr = lr_at(self.step_, steps, lr_peak, "cosine", warm) if steps else lr_peak
                if compute == torch.float32:
                    g, info = arch.step(x, self.params_, self.state_, aux_k, self.aux_coef)
                else:
                    g, info = _step_in(compute, arch, x, self.params_, self.state_, aux_k, self.aux_coef)
                if not math.isfinite(info["mse"]):
                    raise InputError(f"training diverged (non-finite loss) at step {self.step_}; lower lr")
                if unit:  # keep decoder rows on the unit sphere: drop the radial part of the step
                    W = self.params_["W_dec"]
                    g["W_dec"] -= (g["W_dec"] * W).sum(1, keepdim=True) * W
                self.opt_.step([g[name] for name in self.params_], lr)
                if unit:
                    W = self.params_["W_dec"]
                    W /= W.norm(dim=1, keepdim=True).clamp_min(EPS)
                self._track(info, x)
                self.step_ += 1
                if every:
                    window.add(info)
                    if self.step_ % every == 0 or self.step_ == stop:
                        window.record(self)
                t_train += time.perf_counter() - t0
                if steps and self.resample_every and self.step_ % self.resample_every == 0 \
                        and self.step_ <= self.resample_until * steps:
                    t0 = time.perf_counter()
                    self._resample(x, info, arch)
                    t_train += time.perf_counter() - t0
                if bar and (self.step_ % 20 == 0 or self.step_ == stop):
                    bar.update(self.step_, f"batch mse {info['mse']:.4g}")
                if self.checkpoint and steps and self.step_ % self.checkpoint_every == 0 and self.step_ < stop:
                    self._save_dir(Path(self.checkpoint), trainer=True)
                if callback and eval_every and (self.step_ % eval_every == 0 or self.step_ == stop):
                    callback(self, self.step_, self.step_ * self.batch, self.train_seconds_ + t_train)
        finally:
            if bar:
                bar.close()
        synchronize(self.device_)
        if every and window.steps:  # a data iterator that ran out between records
            window.record(self)
        self.train_seconds_ += t_train
        if self.checkpoint and steps:
            self._save_dir(Path(self.checkpoint), trainer=True)

    def _history_every(self, steps: int | None) -> int:
        if self.history_every is not None:
            return self.history_every
        return max(1, (steps or 50 * HISTORY_POINTS) // HISTORY_POINTS)

    def _track(self, info: dict, x: torch.Tensor) -> None:
        st = self.state_
        fired = info["fired"]
        st["since"] += len(x)
        st["since"][fired > 0] = 0
        st["fired"] += fired  # since the last resampling
        st["dead"] = st["since"] >= self.dead_after  # for the AuxK loss

    @torch.no_grad()
    def _resample(self, x: torch.Tensor, info: dict, arch: archs.Arch) -> None:
        """Dead latents restart at the residuals of the batch's worst samples (Towards Monosemanticity's recipe):
        encoder rows at RESTART_SCALE of the live ones' norm, Adam moments reset; until a restart first fires,
        AuxK (TopK, BatchTopK) trains it on the residual like any dead latent."""
        window = self.resample_every * self.batch
        # "dead": firing at less than dead_frac of the average latent's rate over the window
        st = self.state_
        rate = st["fired"].float() / window
        judged = ~st["fresh"]  # a latent resampled last time gets one window before it is judged
        dead = ((rate < self.dead_frac * rate[judged].mean()) & judged).nonzero().flatten()
        st["fired"].zero_()
        st["fresh"].zero_()
        if not len(dead):
            return
        se = info["se"]
        # only samples reconstructed worse than the batch's average: where most rows are exactly zero, their
        # tiny errors (the decoder bias's drift) would otherwise draw most restarts, all towards one direction
        w = (se ** 2 * (se >= se.mean())).cpu()  # drawn by the CPU generator: the same picks on every device
        n = min(len(dead), int((w > 0).sum()))
        if n == 0:
            return
        dead = dead[:n]
        pick = torch.multinomial(w / w.sum(), n, replacement=False, generator=self._gen).to(se.device)
        resid = -info["err"][pick]  # x - x^ of the worst samples: [n, d]
        u = resid / resid.norm(dim=1, keepdim=True).clamp_min(EPS)
        p = self.params_
        alive = torch.ones(self.n_latents, dtype=torch.bool, device=se.device)
        alive[dead] = False
        enc_norm = p["W_enc_T"][alive].norm(dim=1).mean() if alive.any() else 1.0
        p["W_dec"][dead] = u * (1.0 if arch.unit_decoder else p["W_dec"][alive].norm(dim=1).mean())
        p["W_enc_T"][dead] = u * (RESTART_SCALE * enc_norm)
        # where a bias decides firing: fire about as often as the average latent on this batch
        arch.restart_bias(p, dead, x, float(rate[alive].mean().clamp(1 / len(x), 0.5)))
        names = list(p)
        for i, name in enumerate(names):
            if name in ("W_dec", "W_enc_T", "b_enc", "log_theta"):
                self.opt_.m[i][dead] = 0
                self.opt_.v[i][dead] = 0
        # counted dead (so AuxK trains it) until it first fires: a small restart rarely wins a place in the top k
        # by itself where k is tight
        self.state_["since"][dead] = self.dead_after
        self.state_["dead"][dead] = True
        self.state_["fresh"][dead] = True
        self.n_resampled_ += len(dead)

    # ------------------------------------------------------------ inference

    @torch.no_grad()
    def _codes(self, X: torch.Tensor, arch: archs.Arch):
        return arch.select(encode_pre(X, self.params_), self.params_, self.state_, training=False)

    @torch.no_grad()
    def transform(self, X, output: str = "scipy", chunk: int = 8192):
        """Sparse codes: scipy CSR [samples, n_latents] float32, or a torch sparse CSR tensor (output='torch')."""
        self._fitted()
        X = self._as_input(X)
        arch = self._arch()
        rows, cols, vals = [], [], []
        for s in range(0, len(X), chunk):
            x = torch.as_tensor(np.asarray(X[s:s + chunk], dtype=np.float32)).to(self.device_)
            r, c, v = (t.cpu() for t in self._codes(x, arch))
            rows.append(r + s)
            cols.append(c)
            vals.append(v)
        r, c, v = torch.cat(rows), torch.cat(cols), torch.cat(vals)
        C = sp.csr_matrix((v.numpy(), (r.numpy(), c.numpy())), shape=(len(X), self.n_latents), dtype=np.float32)
        return to_output(C, output)

    # ------------------------------------------------------------ saving

    def _cfg(self) -> dict:
        arch = self._arch()
        return saelens.cfg(arch.saelens, self.d_in_, self.n_latents, str(self.device_), arch.cfg(),
                           {"version": __version__, "params": self.get_params(), "step": self.step_,
                            "train_seconds": getattr(self, "train_seconds_", 0.0),
                            "n_resampled": getattr(self, "n_resampled_", 0)})

    def _weights(self) -> dict[str, torch.Tensor]:
        p = self.params_
        w = {"W_enc": p["W_enc_T"].T.contiguous(), "b_enc": p["b_enc"], "W_dec": p["W_dec"], "b_dec": p["b_dec"]}
        t = self._arch().threshold(p, self.state_)
        if t is not None:
            w["threshold"] = t.expand(self.n_latents).contiguous() if t.ndim == 0 else t
        return {k: v.cpu() for k, v in w.items()}

    def save(self, path: str | Path, overwrite: bool = False, extra_json: dict | None = None) -> Path:
        """Write cfg.json + sae_weights.safetensors (+ extra_json files) into a new directory, atomically."""
        self._fitted()
        from monosemantic.runs import check_new_dir

        path = check_new_dir(path, overwrite)
        self._save_dir(path, trainer=False, extra_json=extra_json)
        return path

    def _save_dir(self, path: Path, trainer: bool, extra_json: dict | None = None) -> None:
        files = {**json_files(extra_json), "cfg.json": lambda f: write_json(f, self._cfg()), WEIGHTS: lambda f: save_tensors(f, self._weights())}
        if trainer:
            t = {f"m.{n}": m for n, m in zip(self.params_, self.opt_.m)}
            t.update({f"v.{n}": v for n, v in zip(self.params_, self.opt_.v)})
            t.update({f"state.{n}": v.reshape(-1) for n, v in self.state_.items()})
            t["log_theta"] = self.params_.get("log_theta", torch.zeros(0))
            t["rng"] = self._gen.get_state()
            files[TRAINER] = lambda f: save_tensors(f, {k: v.cpu() for k, v in t.items()})
            files["trainer.json"] = lambda f: write_json(f, {"step": self.step_, "adam_t": self.opt_.t,
                                                              "n_resampled": getattr(self, "n_resampled_", 0),
                                                              "data": getattr(self, "_data_fp", None),
                                                              "history": getattr(self, "history_", None)})
        write_dir(path, files)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> SparseAutoencoder:
        """Open a saved directory (ours, or a SAELens standard/topk/jumprelu one, read as `saelens` says) onto
        `device`; never unpickles."""
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"not a saved SAE directory: {path}")
        cfg = read_json(path / "cfg.json")
        w = load_tensors(path / WEIGHTS)
        try:
            return cls._from_saved(path, cfg, w, device)
        except InputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise InputError(f"{path}/cfg.json does not describe its weights: {type(e).__name__}: {e}") from None

    @classmethod
    def _from_saved(cls, path: Path, cfg: dict, w: dict[str, torch.Tensor], device: str) -> SparseAutoencoder:
        arch, cfg, tensors, threshold = saelens.read(path, cfg, w)
        d_sae, d_in = tensors["W_dec"].shape
        meta = cfg.get("monosemantic", {})
        params = dict(meta.get("params", {}))
        params.update(arch=arch.name, n_latents=int(d_sae), k=int(cfg.get("k", params.get("k", 5))))
        valid = cls().get_params()
        est = cls(**{k: v for k, v in params.items() if k in valid and k != "device"}, device=device)
        try:
            est._check()
        except InputError as e:
            raise InputError(f"{path}/cfg.json: {e}") from None
        est.d_in_ = int(d_in)
        est.params_ = tensors
        est.state_ = _fresh_state(d_sae)
        if arch.threshold_weight:
            est._arch().load_threshold(threshold, est.params_, est.state_)
        est.step_ = int(meta.get("step", 0))
        est.train_seconds_ = float(meta.get("train_seconds", 0.0))
        est.n_resampled_ = int(meta.get("n_resampled", 0))
        est._gen = torch.Generator().manual_seed(est.seed)
        est._to_device()
        est._new_optimizer()
        return est

    def _try_resume(self, path: Path) -> bool:
        """Load a checkpoint written by a fit with the same parameters on the same data; False when there is none.
        A directory holding anything else is refused: a checkpoint replaces what its directory held."""
        tidy_leftovers(path)
        if path.exists() and not path.is_dir():
            raise InputError(f"checkpoint path {path} is a file, not a directory")
        if not (path / TRAINER).is_file():
            if path.is_dir() and any(path.iterdir()):
                raise InputError(f"checkpoint directory {path} is not empty and holds no checkpoint; "
                                 f"give a new or empty directory (its files would be replaced)")
            check_output_path(path)
            return False
        try:
            return self._resume(path)
        except InputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
            raise InputError(f"checkpoint {path} is corrupt ({type(e).__name__}: {e}); "
                             f"use another checkpoint directory") from None

    def _resume(self, path: Path) -> bool:
        old = SparseAutoencoder.load(path, self.device)
        mine = {k: v for k, v in self.get_params().items()
                if k not in ("progress", "checkpoint", "checkpoint_every", "device", "history_every")}
        theirs = {k: v for k, v in old.get_params().items() if k in mine}
        if mine != theirs:
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise InputError(f"checkpoint {path} was written with other parameters ({', '.join(diff)}); "
                             f"use another checkpoint directory")
        t = load_tensors(path / TRAINER)
        info = read_json(path / "trainer.json")
        if not isinstance(info, dict):
            raise TypeError("trainer.json must be a JSON object")
        if info.get("data") != self._data_fp:
            raise InputError(f"checkpoint {path} was written for other data (fingerprint {info.get('data')}, "
                             f"these data {self._data_fp}); use another checkpoint directory")
        for key in ("step", "adam_t", "n_resampled"):
            if not isinstance(info.get(key, 0), int) or isinstance(info.get(key), bool) or info.get(key, 0) < 0:
                raise ValueError(f"trainer.json: {key} must be a non-negative integer, got {info.get(key)!r}")
        self.d_in_, self.params_, self.step_, self.device_ = old.d_in_, old.params_, int(info["step"]), old.device_
        t = {k: v.to(self.device_) if k != "rng" else v for k, v in t.items()}
        self.train_seconds_ = old.train_seconds_
        if "log_theta" in self.params_:
            self.params_["log_theta"] = t["log_theta"]
        self._new_optimizer()
        self.opt_.m = [t[f"m.{n}"] for n in self.params_]
        self.opt_.v = [t[f"v.{n}"] for n in self.params_]
        for n, p, m, v in zip(self.params_, self.params_.values(), self.opt_.m, self.opt_.v):
            if m.shape != p.shape or v.shape != p.shape or m.dtype != p.dtype or v.dtype != p.dtype:
                raise ValueError(f"{TRAINER}: Adam moments of {n} do not match its weights {list(p.shape)}")
        self.opt_.t = int(info["adam_t"])
        self.state_ = {n[6:]: v if n[6:] != "threshold" else v.reshape(()) for n, v in t.items()
                       if n.startswith("state.")}
        self.n_resampled_ = int(info.get("n_resampled", 0))
        history = info.get("history")
        ok = isinstance(history, dict) and all(isinstance(history.get(key), list) for key in HISTORY_KEYS)
        self.history_ = {key: list(history[key]) if ok else [] for key in HISTORY_KEYS}
        fresh = _fresh_state(self.n_latents)
        for n, v in fresh.items():
            if n not in self.state_ or self.state_[n].shape != v.shape or self.state_[n].dtype != v.dtype:
                raise ValueError(f"{TRAINER}: state.{n} does not match {self.n_latents} latents")
        self._gen = torch.Generator()
        self._gen.set_state(t["rng"])
        return True


class _Window:
    """Sums of the training figures since the last history record: floats the step has already synchronised, so
    the bookkeeping adds no work on the device. FVU divides by the data's variance, measured once per fit."""

    def __init__(self):
        self.steps, self.loss, self.mse, self.l0 = 0, 0.0, 0.0, 0.0

    def add(self, info: dict) -> None:
        self.steps += 1
        self.mse += info["mse"]
        self.loss += info["mse"] + info.get("penalty", 0.0) + info.get("aux", 0.0)
        self.l0 += info["l0"]

    def record(self, est: SparseAutoencoder) -> None:
        h, n = est.history_, self.steps
        h["step"].append(est.step_)
        h["samples"].append(est.step_ * est.batch)
        h["loss"].append(self.loss / n)
        h["mse"].append(self.mse / n)
        h["fvu"].append(self.mse / n / est._data_var if est._data_var > 0 else float("nan"))
        h["l0"].append(self.l0 / n)
        h["dead"].append(int((est.state_["since"] >= est.dead_after).sum()))
        h["resampled"].append(est.n_resampled_)
        self.__init__()


def total_variance(X: torch.Tensor) -> float:
    """The summed per-dimension variance of X: [samples, d], the denominator of FVU."""
    return float(X.double().var(0, unbiased=False).sum())


def data_fingerprint(X) -> str:
    """Binds a checkpoint to its training data: shape, dtype and the bytes of up to 256 evenly spaced rows
    (a memory-mapped file is not read whole)."""
    n = len(X)
    rows = np.unique(np.linspace(0, n - 1, min(n, 256)).astype(np.int64))
    sample = np.ascontiguousarray(np.asarray(X[rows] if isinstance(X, np.ndarray) else X[torch.from_numpy(rows)],
                                             dtype=np.float32))
    h = hashlib.sha256(f"{list(X.shape)}".encode())
    h.update(sample.tobytes())
    return f"{n}x{X.shape[1]}:{h.hexdigest()[:16]}"


def _step_in(dtype: torch.dtype, arch: archs.Arch, x, p, state, aux_k: int, aux_coef: float):
    """`arch.step` on `dtype` copies of the batch and weights; gradients and the error come back float32, for
    the optimiser and the resampling that update the float32 parameters."""
    g, info = arch.step(x.to(dtype), {k: v.to(dtype) for k, v in p.items()}, state, aux_k, aux_coef)
    info.update(err=info["err"].float(), se=info["se"].float())
    return {k: v.float() for k, v in g.items()}, info
