"""Winograd F(2,3) / F(4,3) convolutions (torch_tvm/_winograd.py,
_winograd_kernels.py): every candidate against eager over strides of the
shape space (channels that are not a multiple of the vector width, odd sizes
that leave partial tiles, padding 0-2, batch 1 and 3), the fused epilogues
(bias, residual, relu, NaN through relu), which convs are eligible, the
choice recorded with its times, and the counter that shows the kernel ran."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import tvm
import tvm_ffi
from tvm import relax

import torch_tvm
from torch_tvm import _build, _winograd
from torch_tvm import _winograd_kernels as wk
from conftest import GROUP_KIND, group_counters, jit, run_jitted, sgemm_supported


def _target():
    return tvm.target.Target({"kind": "llvm", "mcpu": torch_tvm._C.host_cpu(), "num-cores": 2})


@pytest.fixture
def winograd_mode():
    saved = _winograd.mode
    yield lambda m: setattr(_winograd, "mode", m)
    _winograd.mode = saved


def _run_kernels(x, w, pad, m, bias=None, residual=None, relu=False, lanes=None):
    n, h, wd, c = x.shape
    shape = wk.Shape(n, h, wd, c, w.shape[0], pad, pad)
    target = _target()
    plan = _winograd.plan_for(shape, m, lanes or _winograd._lanes(target))
    bb = relax.BlockBuilder()
    xv = relax.Var("x", relax.TensorType(list(x.shape), "float32"))
    params = [xv]
    rv = None
    if residual is not None:
        rv = relax.Var("r", relax.TensorType(list(residual.shape), "float32"))
        params.append(rv)
    with bb.function("main", params):
        with bb.dataflow():
            out = bb.emit_output(_winograd.build_call(
                bb.add_func, xv, w, relax.const(bias) if bias is not None else None, rv, relu,
                plan))
        bb.emit_func_output(out)
    with target:
        ex = tvm.compile(bb.get(), target=target)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    args = [tvm.runtime.tensor(x)] + ([tvm.runtime.tensor(residual)] if residual is not None else [])
    return vm["main"](*args).numpy()


def _eager(x, w, pad, bias=None, residual=None, relu=False):
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    wt = torch.from_numpy(w).permute(0, 3, 1, 2)
    y = torch.nn.functional.conv2d(xt, wt, None if bias is None else torch.from_numpy(bias),
                                   padding=pad).permute(0, 2, 3, 1)
    if residual is not None:
        y = y + torch.from_numpy(residual)
    if relu:
        y = torch.relu(y)
    return y.numpy()


# (n, h, w, c, k, pad): partial tiles, channel counts off the vector width,
# k below one register block, tiny maps, batch 3.
SHAPES = [
    (1, 8, 8, 16, 16, 1),
    (1, 13, 11, 20, 36, 1),
    (3, 7, 9, 5, 7, 1),
    (3, 6, 6, 3, 40, 0),
    (1, 5, 4, 24, 8, 2),
    (1, 3, 3, 9, 17, 1),
    (3, 14, 14, 32, 48, 1),
]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_winograd_kernels_match_eager(shape, m):
    n, h, w, c, k, pad = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, h, w, c)).astype("float32")
    wt = (rng.standard_normal((k, 3, 3, c)) / np.sqrt(9 * c)).astype("float32")
    ref = _eager(x, wt, pad)
    out = _run_kernels(x, wt, pad, m)
    assert out.shape == ref.shape
    # Winograd reassociates the sums: errors of a few ulps of the output scale.
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-5 * np.abs(ref).max())


@pytest.mark.parametrize("lanes", [1, 4, 16])
def test_winograd_kernels_for_other_vector_widths(lanes):
    """Scalar code and AVX-512's 16 lanes, whatever this host runs."""
    if lanes > _winograd._lanes(_target()):
        pytest.skip("this host cannot execute 16-lane vectors")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 9, 10, 32)).astype("float32")
    wt = (rng.standard_normal((32, 3, 3, 32)) / 17).astype("float32")
    ref = _eager(x, wt, 1)
    out = _run_kernels(x, wt, 1, 4, lanes=lanes)
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-5 * np.abs(ref).max())


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("m", [2, 4])
def test_epilogue_bias_residual_relu_and_non_finite_inputs(m, special):
    """NaN and inf reach exactly the outputs whose window covers them, as in
    eager: the tiles they sit in are computed directly."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 10, 10, 8)).astype("float32")
    x[0, 4, 4, 2] = special
    x[0, 0, 9, :] = special  # on the border: a partial tile
    wt = (rng.standard_normal((16, 3, 3, 8)) / 8).astype("float32")
    bias = rng.standard_normal(16).astype("float32")
    res = rng.standard_normal((1, 10, 10, 16)).astype("float32")
    ref = _eager(x, wt, 1, bias, res, relu=True)
    out = _run_kernels(x, wt, 1, m, bias, res, relu=True)
    assert np.array_equal(np.isnan(out), np.isnan(ref)), "NaN pattern differs from eager"
    assert np.array_equal(np.isinf(out), np.isinf(ref)), "inf pattern differs from eager"
    assert np.array_equal(out[np.isinf(ref)], ref[np.isinf(ref)])
    ok = np.isfinite(ref)
    np.testing.assert_allclose(out[ok], ref[ok], rtol=0, atol=2e-5 * np.abs(ref[ok]).max())
    assert (out[ok] >= 0).all()


def test_weight_transform_is_the_filter_in_the_winograd_domain():
    """G g G^T against the definition, on one filter."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((1, 3, 3, 1)).astype("float32")
    plan = wk.Plan(wk.Shape(1, 4, 4, 1, 1, 1, 1), 2, 1)
    u = wk.transform_weight(w, plan)  # [16, 1, 1, 1]
    _, _, g = wk.matrices(2)
    expected = g @ w[0, :, :, 0].astype(np.float64) @ g.T
    np.testing.assert_allclose(u.reshape(4, 4), expected, rtol=1e-6, atol=1e-7)


class _Block(torch.nn.Module):
    """A ResNet basic block: conv-bn-relu, conv-bn + identity, relu."""

    def __init__(self, c):
        super().__init__()
        self.c1 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b1 = torch.nn.BatchNorm2d(c)
        self.c2 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b2 = torch.nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(y)) + x)


def _randomise_bn(model):
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("mode", ["F2", "F4"])
@pytest.mark.parametrize("batch", [1, 3])
def test_model_runs_winograd_and_matches_eager(winograd_mode, mode, batch):
    winograd_mode(mode)
    model = _randomise_bn(_Block(12))
    x = torch.randn(batch, 12, 15, 13)
    before = torch_tvm.stats()["kernels"]["winograd_calls"]
    gemms_before = torch_tvm.stats()["kernels"]["batched_gemm_calls"]
    with torch.no_grad():
        ref = model(x)
        out, graph = run_jitted(jit(model, [x]), x)
        after_first = torch_tvm.stats()["kernels"]["winograd_calls"]
        gemms = torch_tvm.stats()["kernels"]["batched_gemm_calls"] - gemms_before
        out2 = jit(model, [x])(x)
    assert GROUP_KIND in str(graph)
    for gid, c in group_counters(graph).items():
        assert c["fallback_calls"] == 0, (gid, c["failures"])
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    torch.testing.assert_close(out2, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    tvm_calls = sum(c["calls"] - c["fallback_calls"] for c in group_counters(graph).values())
    assert tvm_calls >= 1
    assert after_first - before == 2 * tvm_calls  # two Winograd convs per TVM call
    # ... each with its GEMMs on the packed GEMM (at::matmul without AVX2/FMA)
    assert gemms == (after_first - before if sgemm_supported() else 0)


@pytest.mark.parametrize("conv", [
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, dilation=2, padding=2),
    dict(kernel_size=3, groups=2, padding=1),
    dict(kernel_size=5, padding=2),
    dict(kernel_size=1),
], ids=["stride2", "dilation2", "groups2", "5x5", "1x1"])
def test_ineligible_convs_stay_on_onednn(winograd_mode, conv):
    winograd_mode("F4")
    model = torch.nn.Sequential(torch.nn.Conv2d(8, 8, **conv), torch.nn.ReLU()).eval()
    x = torch.randn(1, 8, 12, 12)
    kernels = torch_tvm.stats()["kernels"]
    with torch.no_grad():
        out, graph = run_jitted(jit(model, [x]), x)
    after = torch_tvm.stats()["kernels"]
    assert after["winograd_calls"] == kernels["winograd_calls"]
    assert after["conv2d_calls"] > kernels["conv2d_calls"]
    torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)


def _lowered(model, x):
    mod = torch_tvm.to_relax(jit(model, [x]), [x])
    with _target(), tvm.transform.PassContext(opt_level=3):
        return _build._pipeline(3)(mod)


def test_pass_fuses_bias_residual_and_relu_into_the_output_transform(winograd_mode):
    winograd_mode("F4")
    mod = _lowered(_randomise_bn(_Block(8)), torch.randn(1, 8, 8, 8))
    names = sorted(gv.name_hint for gv, f in mod.functions.items()
                   if isinstance(f, tvm.tirx.PrimFunc) and "winograd" in gv.name_hint)
    outputs = [mod[n] for n in names if n.startswith("winograd_output")]
    assert len([n for n in names if n.startswith("winograd_input")]) == 1, names  # one shape
    # conv1: bias + relu (M, X, WD, bias, Y); conv2: + residual R.
    assert sorted(len(f.params) for f in outputs) == [5, 6], names
    main = mod["main"].script()
    assert "relax.nn.conv2d" not in main and "conv2d_nhwc" not in main, main
    assert "R.nn.relu" not in main, main


def test_auto_mode_records_both_candidates_and_the_rule(winograd_mode):
    winograd_mode("auto")
    shape = wk.Shape(1, 9, 9, 16, 16, 1, 1)
    runs = torch_tvm.stats()["kernels"]["winograd_calls"]
    choice = _winograd._decide(shape, _target(), 2)
    # The timing runs of the candidates are not counted as Winograd convs run.
    assert torch_tvm.stats()["kernels"]["winograd_calls"] == runs
    d = next(d for d in _winograd.decisions() if d["shape"] == [1, 9, 9, 16, 16])
    times = d["times_us"]
    assert set(times) == {"onednn", "F2", "F4"} and all(t > 0 for t in times.values())
    best = min(("F2", "F4"), key=times.get)
    expected = int(best[1]) if times[best] < _winograd._MARGIN * times["onednn"] else 0
    assert choice == expected == d["choice"]
    assert d["kernel"] == (f"winograd_F{choice}" if choice else "onednn")
    # Kept: the second build of the shape does not measure again.
    assert _winograd._decide(shape, _target(), 2) == choice
    assert len([d for d in _winograd.decisions() if d["shape"] == [1, 9, 9, 16, 16]]) == 1


def test_off_mode_never_rewrites(winograd_mode):
    winograd_mode("off")
    mod = _lowered(_randomise_bn(_Block(8)), torch.randn(1, 8, 8, 8))
    assert not [gv for gv in mod.functions if "winograd" in gv.name_hint]


def test_explain_shows_the_kernel_each_conv_shape_runs(winograd_mode):
    winograd_mode("F4")
    model = _randomise_bn(_Block(8))
    x = torch.randn(1, 8, 11, 11)
    report = torch_tvm.explain(jit(model, [x]), x)
    text = str(report)
    assert any(c["shape"] == [1, 11, 11, 8, 8] and c["kernel"] == "winograd_F4"
               for c in report.conv_choices), report.conv_choices
    assert "kernel choice: conv2d 3x3 1x11x11x8->8 pad [1, 1]" in text, text
    assert "-> WINOGRAD_F4 (forced)" in text, text


@pytest.mark.parametrize("gemm", _winograd.GEMM_KERNELS)
def test_pass_alone_on_a_before_and_an_expected_module(winograd_mode, gemm, monkeypatch):
    """WinogradConvs on conv + bias + relu in NHWC: one input transform, the
    GEMMs on the transformed weight (packed now for torch_tvm's packed GEMM,
    or a constant for at::matmul), one output transform with bias and relu
    fused (and the exact path's direct weight)."""
    winograd_mode("F4")
    monkeypatch.setattr(_winograd, "gemm_kernel", gemm)
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((16, 3, 3, 8)) / 8).astype("float32")
    b = rng.standard_normal(16).astype("float32")
    x_ty = relax.TensorType([1, 10, 10, 8], "float32")

    bb = relax.BlockBuilder()
    x = relax.Var("x", x_ty)
    with bb.function("main", [x]):
        with bb.dataflow():
            conv = bb.emit(relax.op.nn.conv2d(x, relax.const(w), padding=[1, 1],
                                              data_layout="NHWC", kernel_layout="OHWI"))
            out = bb.emit_output(relax.op.nn.relu(bb.emit(relax.op.add(conv, relax.const(b)))))
        bb.emit_func_output(out)
    before = bb.get()
    with _target(), tvm.transform.PassContext(opt_level=3):
        after = _winograd.winograd_convs(before)

    plan = _winograd.plan_for(wk.Shape(1, 10, 10, 8, 16, 1, 1), 4, _winograd._lanes(_target()))
    fin, fout = wk.kernels(plan, True, False, True)
    bb = relax.BlockBuilder()
    x = relax.Var("x", x_ty)
    with bb.function("main", [x]):
        with bb.dataflow():
            gin, gout = bb.add_func(fin, "winograd_input"), bb.add_func(fout, "winograd_output")
            v = bb.emit(relax.call_tir(gin, [x], relax.TensorType([36, plan.tiles, 8], "float32")))
            m_ty = relax.TensorType([36, plan.tiles, 16], "float32")
            u = wk.transform_weight(w, plan)
            if gemm == "packed":
                # The handle the pass packed U under: it must multiply by U.
                handle = int(after["main"].body.blocks[0].bindings[1].value.args[2].value)
                vv = rng.standard_normal((36, plan.tiles, 8)).astype("float32")
                got = tvm_ffi.get_global_func(wk.PACKED_GEMM)(tvm.runtime.tensor(vv), handle)
                np.testing.assert_allclose(got.numpy(), vv @ u, rtol=1e-4, atol=1e-5)
                m = bb.emit(relax.op.call_pure_packed(wk.PACKED_GEMM, v,
                                                      relax.prim_value(handle), ty_args=m_ty))
            else:
                m = bb.emit(relax.op.call_pure_packed(wk.GEMM, v, relax.const(u), ty_args=m_ty))
            out = bb.emit_output(relax.call_tir(
                gout, [m, x, relax.const(wk.direct_weight(w)), relax.const(b)],
                relax.TensorType([1, 10, 10, 16], "float32")))
        bb.emit_func_output(out)
    tvm.ir.assert_structural_equal(after, bb.get())
