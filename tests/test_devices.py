"""Devices, precision and modules: `device=` everywhere, one error line for a device that is not there, and the
toy models as torch.nn.Modules that the hand-written trainer still trains. The CUDA tests skip without a GPU."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import monosemantic.measures as measures
from monosemantic.devices import available, check_dtype, resolve
from monosemantic.dictionary import SparseAutoencoder
from monosemantic.errors import InputError
from monosemantic.experiments.sweeps import parse_spec, run_sweep
from monosemantic.sensing import unfold_info
from monosemantic.toy.models import loss_per_instance, make_model
from monosemantic.toy.moe import MoEToyModel
from monosemantic.toy.sampler import FeatureSampler, importance, probabilities
from monosemantic.toy.train import kept_tensors, train_toy

from test_cli import SMALL, run

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine (the CPU tests cover the rest)")
no_cuda = pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")


# ---- resolving devices and dtypes


def test_resolve_names_the_devices():
    assert resolve("cpu") == torch.device("cpu") and resolve(" CPU ") == torch.device("cpu")
    assert resolve("auto") == resolve(None) == (torch.device("cuda", 0) if CUDA else torch.device("cpu"))
    assert available()[0] == "cpu" and len(available()) == 1 + torch.cuda.device_count()
    for bad in ("gpu", "mps", "cuda:x", ""):
        with pytest.raises(InputError, match="unknown device.*cpu"):
            resolve(bad)
    with pytest.raises(InputError, match="available: auto, cpu"):
        resolve(f"cuda:{torch.cuda.device_count()}")  # one past the last GPU


@no_cuda
def test_cuda_without_cuda_is_refused():
    with pytest.raises(InputError, match="CUDA is not available.*available: auto, cpu$"):
        resolve("cuda")


def test_dtypes():
    assert check_dtype("float32", torch.device("cpu")) == torch.float32
    assert check_dtype(torch.float32, torch.device("cpu")) == torch.float32
    with pytest.raises(InputError, match="bfloat16 needs a GPU"):
        check_dtype("bfloat16", torch.device("cpu"))
    with pytest.raises(InputError, match="unknown dtype"):
        check_dtype("float8", torch.device("cpu"))


# ---- the command line: one error line naming the devices, exit 2, nothing written


@pytest.mark.parametrize("device, words", [("gpu", "unknown device 'gpu'; choose from auto, cpu"),
                                           pytest.param("cuda", "CUDA is not available", marks=no_cuda),
                                           pytest.param("cuda:7", "available: auto, cpu", marks=no_cuda)])
@pytest.mark.parametrize("command", [
    SMALL + ["--sparsity", 0.5],
    ["road1", "l1", "--n", 4, "--m", 2, "--steps", 5, "--l1", 0, 0.1, "--eval-batch", 64, "--no-progress"],
    ["transition", "--m", 8, "--n-over-m", 2, "--trials", 2, "--methods", "omp"],
])
def test_bad_device_is_one_line_and_exit_2(tmp_path, capsys, device, words, command):
    code, _, err = run(command + ["--device", device, "--out", tmp_path / "run"], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and words in err
    assert not (tmp_path / "run").exists()


def test_unfold_and_sweep_refuse_a_bad_device(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.normal(size=(10, 4)))
    np.save(tmp_path / "F.npy", rng.normal(size=(6, 4)))
    code, _, err = run(["unfold", "--data", tmp_path / "X.npy", "--dictionary", tmp_path / "F.npy",
                        "--device", "tpu", "--out", tmp_path / "u"], capsys)
    assert code == 2 and err.startswith("error: unknown device 'tpu'") and err.count("\n") == 1
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"base": {"n": 2, "m": 1, "steps": 5}, "grid": {"density": [0.5]}}))
    code, _, err = run(["sweep", "run", spec, "--device", "tpu", "--out", tmp_path / "s", "--no-progress"], capsys)
    assert code == 2 and err.startswith("error: unknown device 'tpu'") and not (tmp_path / "s").exists()


def test_config_records_the_device_used(tmp_path, capsys):
    assert run(SMALL + ["--sparsity", 0.5, "--device", "auto", "--out", tmp_path / "run"], capsys)[0] == 0
    used = json.loads((tmp_path / "run/config.json").read_text())["device"]
    assert used == ("cuda:0" if CUDA else "cpu")
    spec = parse_spec({"base": {"n": 2, "m": 1, "steps": 5, "batch": 16, "eval_batch": 32, "seeds": 1},
                       "grid": {"density": [0.5, 0.2]}})
    meta = run_sweep(spec, tmp_path / "sweep", workers=1, device="cpu")
    point = json.loads((tmp_path / "sweep/points/p00000/config.json").read_text())
    assert meta["device"] == point["device"] == "cpu"


# ---- the toy models as nn.Modules


@pytest.mark.parametrize("kind", ["linear", "relu-output", "relu-hidden", "abs"])
def test_toy_models_are_modules(kind):
    model = make_model(kind, 3, 6, 2, [0, 1, 2])
    assert isinstance(model, torch.nn.Module)
    names = {"abs": ["W1", "W2", "b_out"]}.get(kind, ["theta"])
    assert [n for n, _ in model.named_parameters()] == names and list(model.state_dict()) == names
    x = FeatureSampler(torch.full((3, 6), 0.3), seed=0).sample_into(torch.empty(3, 32, 6))
    seen = []
    model.register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    out = model(x)  # __call__: hooks run
    assert seen == [(3, 32, 6)] and out.requires_grad
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # a copy through state_dict gives the same function
    twin = make_model(kind, 3, 6, 2, [7, 8, 9])
    twin.load_state_dict(model.state_dict())
    torch.testing.assert_close(twin(x), model(x))


def test_moe_is_a_module():
    moe = MoEToyModel(2, 5, 2, experts=3, k=1, seeds=[0, 1])
    assert [n for n, _ in moe.named_parameters()] == ["W_experts", "router", "b_out"]
    assert moe.to(torch.float64).W.dtype == torch.float64


def test_autograd_training_of_the_module_lowers_the_loss():
    """A user's own loop: torch.optim on model.parameters(), the loss from forward."""
    model = make_model("relu-output", 2, 5, 2, [0, 1])
    sampler = FeatureSampler(probabilities([0.7, 0.9], 5), seed=0)
    weight = importance(5, 0.9).reshape(1, 1, 5)
    x_eval = FeatureSampler(probabilities([0.7, 0.9], 5), seed=1).sample_into(torch.empty(2, 4096, 5))
    before = loss_per_instance(model, x_eval, weight)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    x = torch.empty(2, 256, 5)
    for _ in range(100):
        sampler.sample_into(x)
        loss = ((model(x) - x) ** 2 * weight).sum(2).mean(1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (loss_per_instance(model, x_eval, weight) < 0.8 * before).all()


def test_hand_written_trainer_trains_the_modules_tensors():
    """`.to()` moves the parameter, the gradient buffer and (rebuilt) workspaces; the trainer follows them, and
    the weights it writes are the module's parameters."""
    model = make_model("relu-hidden", 2, 6, 3, [0, 1]).to(torch.float64)
    run_ = train_toy("relu-hidden", 6, 3, probabilities([0.8, 0.9], 6), torch.ones(6), steps=30, batch=64,
                     eval_batch=256, model=model)
    assert run_.model is model and model.theta.dtype == model.grad.dtype == torch.float64
    assert torch.equal(kept_tensors(run_)["W"], model.theta.detach()[:, :3])


def test_trainer_same_numbers_on_explicit_cpu():
    args = ("relu-output", 5, 2, probabilities([0.8], 5), importance(5, 0.9))
    a = train_toy(*args, steps=100, batch=128, eval_batch=512)
    b = train_toy(*args, steps=100, batch=128, eval_batch=512, device="cpu")
    assert torch.equal(a.model.W, b.model.W) and a.loss == b.loss


# ---- CUDA against the CPU (same seed: same layouts, losses within tolerance)


@needs_cuda
@pytest.mark.parametrize("kind", ["relu-output", "relu-hidden", "abs"])
def test_cuda_matches_cpu(kind):
    """Same seed, same data stream (drawn on the CPU) and same start: only float rounding differs, so the kept
    layouts agree and the losses agree to 2% (bmm sums in another order; 2,000 AdamW steps amplify it a little).
    The kept start may differ where two starts reach the same layout: its loss and layout are what must agree."""
    n, m = (5, 2) if kind != "abs" else (8, 4)
    sp = [0.0, 0.8, 0.9]
    kw = dict(steps=2000, seeds=4, eval_batch=8192)
    cpu = train_toy(kind, n, m, probabilities(sp, n), importance(n, 0.9), **kw, device="cpu")
    gpu = train_toy(kind, n, m, probabilities(sp, n), importance(n, 0.9), **kw, device="cuda")
    assert next(gpu.model.parameters()).is_cuda
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=0.02)
    Wc, Wg = kept_tensors(cpu)["W"], kept_tensors(gpu)["W"]
    assert measures.represented(Wc).tolist() == measures.represented(Wg).tolist()
    assert [measures.geometry(w)["label"] for w in Wc] == [measures.geometry(w)["label"] for w in Wg]


@needs_cuda
def test_cuda_unfolding_matches_cpu():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(256, 64))
    C = np.zeros((500, 256))
    for row in C:
        row[rng.choice(256, 5, replace=False)] = rng.uniform(1, 2, 5)
    X = C @ F
    for method, kw in (("omp", {}), ("l1", dict(alpha=1e-3, positive=True)), ("fista", dict(alpha=1e-2))):
        a = unfold_info(X, F, method, **kw, device="cpu")
        b = unfold_info(X, F, method, **kw, device="cuda")
        assert (a.codes != 0).toarray().tolist() == (b.codes != 0).toarray().tolist()
        np.testing.assert_allclose(b.codes.toarray(), a.codes.toarray(), atol=1e-4)


@needs_cuda
def test_cuda_toy_train_command(tmp_path, capsys):
    assert run(SMALL + ["--sparsity", 0.5, "--device", "cuda", "--out", tmp_path / "run"], capsys)[0] == 0
    assert json.loads((tmp_path / "run/config.json").read_text())["device"] == "cuda:0"
    assert load_file(tmp_path / "run/model.safetensors")["W"].device.type == "cpu"


# ---- SAEs: device, precision, modules


def _sae_data(samples=3000, d=16, seed=0):
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(32, d))
    F /= np.linalg.norm(F, axis=1, keepdims=True)
    C = (rng.random((samples, 32)) < 3 / 32) * rng.random((samples, 32))
    return (C @ F).astype(np.float32)


@pytest.mark.parametrize("arch", ["topk", "relu", "batchtopk", "jumprelu"])
def test_sae_module_is_the_estimator(arch):
    X = _sae_data()
    sae = SparseAutoencoder(arch=arch, n_latents=32, k=3, samples=6000, batch=128).fit(X)
    module = sae.module()
    names = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["log_theta"] if arch == "jumprelu" else [])
    assert [n for n, _ in module.named_parameters()] == names
    assert ("threshold" in module.state_dict()) == (arch == "batchtopk")
    x = torch.from_numpy(X[:64])
    expect = sae.inverse_transform(sae.transform(X[:64]))
    np.testing.assert_allclose(module(x).detach().numpy(), expect, atol=1e-5)
    # leading dims pass through (activations [batch, seq, d]); codes are the estimator's
    assert module.encode(x.reshape(8, 8, 16)).shape == (8, 8, 32)
    np.testing.assert_allclose(module.encode(x).detach().numpy(), sae.transform(X[:64]).toarray(), atol=1e-5)
    # the hand-written trainer moves the module: it holds the estimator's tensors (BatchTopK's threshold is a copy)
    sae.partial_fit(_sae_data(seed=1)[:512])
    np.testing.assert_array_equal(module.W_dec.detach().numpy(), sae.components_)
    if arch != "batchtopk":
        np.testing.assert_allclose(module(x).detach().numpy(), sae.inverse_transform(sae.transform(X[:64])), atol=1e-5)


def test_sae_module_spliced_and_trained_by_autograd():
    X = _sae_data()
    sae = SparseAutoencoder(arch="topk", n_latents=32, k=3, samples=3000, batch=128).fit(X)
    module = sae.module()
    net = torch.nn.Sequential(torch.nn.Identity(), module)  # the SAE spliced into a network
    x = torch.from_numpy(X[:1024])
    with torch.no_grad():
        before = float(((net(x) - x) ** 2).sum(1).mean())
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    for _ in range(50):
        loss = ((net(x) - x) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.9 * before
    np.testing.assert_array_equal(sae.components_, module.W_dec.detach().numpy())  # the estimator moved too


def test_sae_records_its_device_and_bfloat16_is_refused_on_cpu(tmp_path):
    X = _sae_data()
    sae = SparseAutoencoder(n_latents=32, k=3, samples=1000, batch=128, device="auto").fit(X)
    assert sae.device_ == resolve("auto")
    sae.save(tmp_path / "sae")
    assert json.loads((tmp_path / "sae/cfg.json").read_text())["device"] == str(resolve("auto"))
    assert SparseAutoencoder.load(tmp_path / "sae").device_ == torch.device("cpu")
    with pytest.raises(InputError, match="bfloat16 needs a GPU"):
        SparseAutoencoder(n_latents=32, k=3, samples=1000, dtype="bfloat16", device="cpu").fit(X)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["topk", "jumprelu"])
def test_sae_bfloat16_step_tracks_float32(arch, monkeypatch):
    """The bfloat16 step runs on the CPU too (only the check refuses it there): with the check lifted, its fit
    lands within 0.05 of float32's score (bfloat16 keeps 8 bits of mantissa; the parameters stay float32)."""
    import monosemantic.dictionary.estimator as E

    X = _sae_data()
    kw = dict(arch=arch, n_latents=32, k=3, samples=30_000, batch=128, seed=0)
    f32 = SparseAutoencoder(**kw).fit(X)
    monkeypatch.setattr(E, "check_dtype", lambda dtype, device: torch.bfloat16)
    bf16 = SparseAutoencoder(**kw, dtype="bfloat16").fit(X)
    assert bf16.params_["W_dec"].dtype == torch.float32
    assert f32.score(X) > 0.5 and abs(bf16.score(X) - f32.score(X)) < 0.05


@pytest.mark.parametrize("args, words", [
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--dtype", "bfloat16", "--device", "cpu"], "bfloat16 needs a GPU; device cpu runs float32 only (available: cpu"),
    (["--arch", "mbdl", "--device", "gpu"], "unknown device 'gpu'"),
    pytest.param(["--device", "cuda"], "CUDA is not available", marks=no_cuda),
])
def test_sae_train_bad_device_or_dtype(tmp_path, capsys, args, words):
    np.save(tmp_path / "X.npy", _sae_data())
    code, _, err = run(["sae", "train", "--data", tmp_path / "X.npy", "--latents", 32, "--k", 3, "--samples", 1000,
                        "--out", tmp_path / "sae", "--no-progress"] + args, capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and words in err
    assert not (tmp_path / "sae").exists()


@needs_cuda
def test_cuda_sae_matches_cpu():
    X = _sae_data(samples=20_000)
    kw = dict(arch="topk", n_latents=32, k=3, samples=100_000, batch=256, seed=0)
    cpu = SparseAutoencoder(**kw, device="cpu").fit(X)
    gpu = SparseAutoencoder(**kw, device="cuda").fit(X)
    assert gpu.params_["W_dec"].is_cuda and gpu.module().W_dec.is_cuda
    assert abs(gpu.score(X) - cpu.score(X)) < 0.02
    bf16 = SparseAutoencoder(**kw, device="cuda", dtype="bfloat16").fit(X) if torch.cuda.is_bf16_supported() else gpu
    assert abs(bf16.score(X) - cpu.score(X)) < 0.05
