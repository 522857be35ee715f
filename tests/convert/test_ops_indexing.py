"""Indexing, shape, scan, reduction, statistics and resampling converters.

Same machinery as test_ops.py: each case is traced and scripted, run through
torch_tvm three times, and compared with eager; the op must be inside a TVM
group with nothing left outside and no fallback.
"""
from __future__ import annotations


import pytest
import torch

import torch_tvm
from conftest import GROUP_KIND, group_counters, jit, outside_aten_ops, run_jitted
from test_ops import (C, D, E, H, I, N, S, W, L, P, check_ran_in_tvm,  # noqa: F401
                      make_input, run_case)


class T:  # a float input with ties (values from a small set) and NaN
    def __init__(self, shape, nan=True):
        self.shape, self.nan = shape, nan


class B:  # a bool input (dtype=torch.uint8 for a uint8 one)
    def __init__(self, shape, dtype=torch.bool):
        self.shape, self.dtype = shape, dtype


def _make(spec, gen):
    if isinstance(spec, B):
        return torch.randint(0, 2, spec.shape, generator=gen).to(spec.dtype)
    if isinstance(spec, T):
        x = torch.randint(0, 4, spec.shape, generator=gen).float() - 1.5
        if spec.nan:
            x.view(-1)[torch.randint(0, x.numel(), (2,), generator=gen)] = float("nan")
        return x
    if isinstance(spec, torch.Tensor):
        return spec.clone()
    return make_input(spec, gen)


NEG_INF_ROW = torch.tensor([[float("-inf")] * 4, [1.0, 2.0, float("-inf"), 0.5],
                            [float("inf"), 1.0, 2.0, 3.0]])

CASES = [
    # --- shape / views -----------------------------------------------------
    ("roll_flat", "x: torch.roll(x, 3) * 2.0", [(N, S, D)]),
    ("roll_dims_negative", "x: torch.roll(x, (-2, 7), (1, -1)) + 1.0", [(N, S, D)]),
    ("roll_int", "x: torch.roll(x, -1, 0) + 1", [I((N, D))]),
    ("flip", "x: torch.flip(x, [0, -1]) * 2.0", [(N, S, D)]),
    ("flip_int", "x: torch.flip(x, [1]) + 1", [I((N, D))]),
    ("repeat", "x: x.repeat(2, 1, 3) + 1.0", [(S, D)]),
    ("repeat_same_rank", "x: x.repeat(1, 2) * 2.0", [(S, D)]),
    ("tile_short_dims", "x: torch.tile(x, (2,)) + 1.0", [(N, S, D)]),
    ("stack", "x, y: torch.stack([x, y], 1) * 2.0", [(N, D), (N, D)]),
    ("stack_negative_dim", "x, y, z: torch.stack([x, y, z], -1) + 1.0", [(N, S), (N, S), (N, S)]),
    ("unbind", "x: torch.unbind(x * 2.0, 1)", [(N, 3, D)]),
    ("unbind_unpacked", "x: torch.unbind(x + 1.0, -1)[1] * 3.0", [(N, 3)]),
    ("select_negative", "x: (x * 2.0)[:, -1]", [(N, S, D)]),
    ("select_int", "x: torch.select(x + 1, 0, 1)", [I((N, D))]),
    ("narrow", "x: (x * 2.0).narrow(1, 1, 3)", [(N, S, D)]),
    ("narrow_negative_start", "x: (x * 2.0).narrow(-1, -3, 2)", [(N, S, D)]),
    ("movedim", "x: torch.movedim(x, 1, -1) * 2.0", [(N, C, H, W)]),
    ("movedim_list", "x: torch.movedim(x, [0, 1], [2, 0]) * 2.0", [(N, C, H)]),
    ("swapaxes", "x: torch.swapaxes(x, 0, 2) + 1.0", [(N, S, D)]),
    # --- scatters into slices (what writes into a slice of a fresh buffer become) -
    ("slice_scatter", "x, y: torch.slice_scatter(x, y * 2.0, 1, 1, 4)", [(N, S, D), (N, 3, D)]),
    ("slice_scatter_negative_bounds", "x, y: torch.slice_scatter(x, y + 1.0, -1, -4, -1)",
     [(N, S, D), (N, S, 3)]),
    ("slice_scatter_step", "x, y: torch.slice_scatter(x, y * 2.0, 1, 1, None, 2)",
     [(N, 7, D), (N, 3, D)]),
    ("slice_scatter_clamped_end", "x, y: torch.slice_scatter(x, y, 0, 1, 1000) * 2.0",
     [(N, D), (N - 1, D)]),
    ("slice_scatter_empty", "x, y: torch.slice_scatter(x, y, 0, 5, 3) * 2.0", [(N, D), (0, D)]),
    ("slice_scatter_int", "x, y: torch.slice_scatter(x + 1, y, 1, 0, 2)", [I((N, D)), I((N, 2))]),
    ("select_scatter", "x, y: torch.select_scatter(x, y * 2.0, 1, 2)", [(N, S, D), (N, D)]),
    ("select_scatter_negative", "x, y: torch.select_scatter(x, y + 1.0, -1, -1)",
     [(N, S, D), (N, S)]),
    ("clone_fill_", "x: x.clone().fill_(2.5) + x", [(N, D)]),
    ("zero", "x: torch.zero_(x * 2.0) + 1.0", [(N, D)]),
    ("clone", "x: torch.clone(x * 2.0) + torch.clone(x)", [(N, S, D)]),
    ("clone_int", "x: torch.clone(x) * 2", [I((N, D))]),
    # --- indexing (run-time indices are bounds-checked) ------------------------
    ("index_select", "x, i: torch.index_select(x, 1, i) * 2.0", [(N, S, D), I((4,), 0, S)]),
    ("index_select_0d_index", "x, i: torch.index_select(x, 0, i) + 1.0", [(N, D), I((), 0, N)]),
    ("gather", "x, i: torch.gather(x, 1, i) * 2.0", [(N, S, D), I((N, 4, D), 0, S)]),
    ("gather_smaller", "x, i: torch.gather(x, -1, i) + 1.0", [(N, S, D), I((N, 2, 3), 0, D)]),
    ("index_one", "x, i: x[i] * 2.0", [(N, S, D), I((2, 3), -N, N)]),
    ("index_middle", "x, i: x[:, i] + 1.0", [(N, S, D), I((5,), -S, S)]),
    ("index_two_adjacent", "x, i, j: x[:, i, j] * 2.0", [(N, S, D), I((4,), -S, S), I((4,), -D, D)]),
    ("index_two_broadcast", "x, i, j: x[i, j] * 2.0", [(N, S, D), I((3, 1), -N, N), I((4,), -S, S)]),
    ("index_separated", "x, i, j: x[i, :, j] + 1.0", [(N, S, D), I((2, 2), 0, N), I((2, 2), -D, D)]),
    ("index_int_values", "x, i: x[i, i] + 1", [I((N, N, D)), I((3,), -N, N)]),
    # --- scans, selection, reductions ---------------------------------------
    ("cumsum", "x: torch.cumsum(x, 1)", [E((N, 5, D))]),
    ("cumsum_int", "x: torch.cumsum(x, -1)", [I((N, D))]),
    ("cumsum_dtype", "x: torch.cumsum(x, 0, dtype=torch.float64)", [(N, D)]),
    ("cumsum_bool", "x: torch.cumsum(x, 1)", [B((N, D))]),
    ("topk", "x: torch.topk(x, 3, -1)", [T((N, S, D))]),
    ("topk_smallest_dim1", "x: torch.topk(x, 2, 1, largest=False)", [T((N, S, D))]),
    ("topk_ties_int", "x: torch.topk(x, 4, 0)", [I((S, D), 0, 3)]),
    ("topk_unsorted", "x: torch.topk(x, 3, 1, sorted=False)", [(N, D)]),
    ("argmax_flat", "x: torch.argmax(x)", [T((N, S, D))]),
    ("argmax_keepdim_flat", "x: torch.argmax(x, keepdim=True)", [T((N, D), nan=False)]),
    ("argmax_dim", "x: torch.argmax(x, 1, True)", [T((N, S, D))]),
    ("argmin_dim", "x: torch.argmin(x, -1)", [T((N, S, D))]),
    ("argmin_flat", "x: torch.argmin(x)", [T((N, D), nan=False)]),
    ("argmin_int_ties", "x: torch.argmin(x, 0)", [I((S, D), 0, 3)]),
    ("amax", "x: torch.amax(x, (1, 2))", [E((N, S, D))]),
    ("amax_keepdim", "x: torch.amax(x, -1, True)", [T((N, S, D))]),
    ("amin", "x: torch.amin(x, 0)", [E((N, S, D))]),
    ("amin_int", "x: torch.amin(x, 1)", [I((N, D))]),
    ("max_full", "x: torch.max(x)", [E((N, S, D))]),
    ("min_full", "x: torch.min(x) + x", [E((N, S, D))]),
    ("max_full_no_nan", "x: torch.max(x) * 2.0", [(N, S, D)]),
    ("min_full_int", "x: torch.min(x)", [I((N, D))]),
    ("min_dim", "x: torch.min(x, 1)", [T((N, S, D))]),
    ("min_dim_keepdim", "x: torch.min(x, -1, keepdim=True)", [E((N, S, D))]),
    ("all_full", "x: torch.all(x)", [B((N, D))]),
    ("any_full", "x: torch.any(x)", [E((N, S, D))]),
    ("all_dim", "x: torch.all(x, 1)", [E((N, S, D))]),
    ("any_dim_keepdim", "x: torch.any(x, -1, keepdim=True)", [B((N, S, D))]),
    ("all_int", "x: torch.all(x, 0)", [I((N, D), 0, 3)]),
    ("all_uint8", "x: torch.all(x, 1)", [B((N, D), torch.uint8)]),
    # --- statistics ----------------------------------------------------------
    ("std_full", "x: torch.std(x)", [(N, S, D)]),
    ("var_full_biased", "x: torch.var(x, unbiased=False)", [(N, S, D)]),
    ("std_dim", "x: torch.std(x, 1)", [(N, S, D)]),
    ("var_dims_keepdim", "x: torch.var(x, [0, 2], keepdim=True)", [(N, S, D)]),
    ("var_correction_2", "x: torch.var(x, -1, correction=2)", [(N, S, D)]),
    ("std_correction_0", "x: torch.std(x, (1,), correction=0, keepdim=True)", [(N, S, D)]),
    ("var_single_element", "x: torch.var(x, 1)", [(N, 1, D)]),
    ("var_edges", "x: torch.var(x, 2)", [E((N, S, D))]),
    ("var_mean", "x: torch.var_mean(x, 1)", [(N, S, D)]),
    ("std_mean_full", "x: torch.std_mean(x)", [(N, S, D)]),
    ("norm_default", "x: torch.norm(x)", [(N, S, D)]),
    ("norm_p1_dim", "x: torch.norm(x, 1, dim=1)", [(N, S, D)]),
    ("norm_inf", "x: torch.norm(x, float('inf'), dim=-1)", [E((N, S, D))]),
    ("norm_fro", "x: torch.norm(x, 'fro', dim=(1, 2))", [(N, S, D)]),
    ("norm_method_keepdim", "x: x.norm(p=2, dim=-1, keepdim=True)", [(N, S, D)]),
    ("vector_norm_p3", "x: torch.linalg.vector_norm(x, 3.0, dim=1)", [(N, S, D)]),
    ("vector_norm_neg_inf", "x: torch.linalg.vector_norm(x, float('-inf'), dim=(0, 2))", [E((N, S, D))]),
    ("vector_norm_0", "x: torch.linalg.vector_norm(x, 0, dim=-1)", [E((N, S, D))]),
    ("vector_norm_edges", "x: torch.linalg.vector_norm(x, dim=-1)", [E((N, S, D))]),
    ("logsumexp", "x: torch.logsumexp(x, 1)", [(N, S, D)]),
    ("logsumexp_inf_rows", "x: torch.logsumexp(x, -1, keepdim=True)", [NEG_INF_ROW]),
    ("logsumexp_edges", "x: torch.logsumexp(x, (0, 2))", [E((N, S, D))]),
    ("logsumexp_int", "x: torch.logsumexp(x, 1)", [I((N, D))]),
    ("prod_full", "x: torch.prod(x)", [P((N, 5))]),
    ("prod_dim", "x: torch.prod(x, 1)", [E((N, S, D))]),
    ("prod_int", "x: torch.prod(x, -1, keepdim=True)", [I((N, 5), -3, 4)]),
    # --- resampling / padding ---------------------------------------------------
    ("pixel_shuffle", "x: torch.nn.functional.pixel_shuffle(x, 2) + 1.0", [(N, 8, H, W)]),
    ("pixel_unshuffle", "x: torch.nn.functional.pixel_unshuffle(x, 2) * 2.0", [(N, C, 6, 4)]),
    ("upsample_nearest_scale", "x: torch.nn.functional.interpolate(x, scale_factor=2.0)", [(N, C, H, W)]),
    ("upsample_nearest_frac_scale", "x: torch.nn.functional.interpolate(x, scale_factor=(1.7, 0.6))", [(N, C, H, W)]),
    ("upsample_nearest_size", "x: torch.nn.functional.interpolate(x, size=(11, 5))", [(N, C, H, W)]),
    ("upsample_nearest_shrink", "x: torch.nn.functional.interpolate(x, size=(3, 17))", [(N, C, H, W)]),
    ("upsample_bilinear_scale", "x: torch.nn.functional.interpolate(x, scale_factor=2.0, mode='bilinear')", [(N, C, H, W)]),
    ("upsample_bilinear_size", "x: torch.nn.functional.interpolate(x, size=(11, 4), mode='bilinear')", [(N, C, H, W)]),
    ("upsample_bilinear_align", "x: torch.nn.functional.interpolate(x, size=(15, 3), mode='bilinear', align_corners=True)", [(N, C, H, W)]),
    ("upsample_bilinear_frac", "x: torch.nn.functional.interpolate(x, scale_factor=(1.3, 0.7), mode='bilinear')", [(N, C, H, W)]),
    ("pad_reflect", "x: torch.nn.functional.pad(x, (2, 1, 0, 3), mode='reflect')", [(N, C, H, W)]),
    ("pad_reflect_1d", "x: torch.nn.functional.pad(x, (3, 3), mode='reflect') + 1.0", [(N, C, L)]),
    ("pad_replicate", "x: torch.nn.functional.pad(x, (1, 2, 3, 0), mode='replicate')", [(N, C, H, W)]),
    ("pad_circular", "x: torch.nn.functional.pad(x, (2, 1, 1, 3), mode='circular')", [(N, C, H, W)]),
    ("reflection_pad2d", "x: torch._C._nn.reflection_pad2d(x, [1, 2, 2, 1]) * 2.0", [(N, C, H, W)]),
    ("replication_pad1d", "x: torch._C._nn.replication_pad1d(x, [0, 4]) * 2.0", [(N, C, L)]),
    ("upsample_nearest_vec_direct", "x: torch._C._nn.upsample_nearest2d(x, None, [1.5, 3.0])", [(N, C, H, W)]),
    ("upsample_nearest_sizes_scales", "x: torch._C._nn.upsample_nearest2d(x, [5, 20], 0.7, 2.5)", [(N, C, H, W)]),
    ("upsample_bilinear_vec_direct", "x: torch._C._nn.upsample_bilinear2d(x, None, False, [0.6, 2.5])", [(N, C, H, W)]),
    ("upsample_bilinear_sizes_scales", "x: torch._C._nn.upsample_bilinear2d(x, [4, 9], True, 1.0, 1.0)", [(N, C, H, W)]),
    ("upsample_bilinear_nan", "x: torch._C._nn.upsample_bilinear2d(x, [9, 13], False)", [E((N, C, 5, 6))]),
    # --- linear algebra --------------------------------------------------------
    ("einsum_bmm", "x, y: torch.einsum('bij,bjk->bik', x, y)", [(N, S, D), (N, D, 4)]),
    ("einsum_attention", "q, k: torch.einsum('bhqd,bhkd->bhqk', q, k)", [(N, 2, S, D), (N, 2, 5, D)]),
    ("einsum_transpose", "x: torch.einsum('ij->ji', x) + 1.0", [(S, D)]),
    ("einsum_sum", "x: torch.einsum('bij->b', x)", [(N, S, D)]),
    ("einsum_outer_implicit", "x, y: torch.einsum('i,j', x, y)", [(S,), (D,)]),
    ("einsum_sum_and_permute", "x, y: torch.einsum('bik,kj->jb', x, y)", [(N, S, D), (D, 3)]),
    ("baddbmm", "b, x, y: torch.baddbmm(b, x, y, beta=0.5, alpha=2.0)", [(N, S, 4), (N, S, D), (N, D, 4)]),
    ("baddbmm_beta0_nan", "b, x, y: torch.baddbmm(b, x, y, beta=0.0)", [E((N, S, D)), (N, S, 3), (N, 3, D)]),
    ("diff", "x: torch.diff(x, dim=1)", [(N, S, D)]),
    ("diff_n2_prepend_append", "x, p, a: torch.diff(x, n=2, dim=-1, prepend=p, append=a)", [(N, D), (N, 1), (N, 2)]),
    ("diff_int", "x: torch.diff(x)", [I((N, D))]),
    ("diff_bool", "x: torch.diff(x)", [B((N, D))]),
]


# Scripting inlines F.interpolate / torch.norm with every branch: the ones not
# taken hold ops with no converter (upsample_nearest1d, frobenius_norm), so
# these run traced only; the _C._nn / method cases above cover the scripted form.
TRACE_ONLY = {c[0] for c in CASES if "interpolate(" in c[1] or "torch.norm(" in c[1]}


def test_case_table_is_well_formed():
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"


@pytest.fixture(autouse=True)
def _single_op_groups(tvm_enabled):
    torch_tvm.enable(min_group_size=1)


def _run_case(name, sig_expr, specs, mode):
    return run_case(name, sig_expr, specs, mode, make=_make)


@pytest.mark.parametrize("name,sig_expr,specs,mode", [
    (*c, m) for c in CASES for m in ("trace", "script") if m == "trace" or c[0] not in TRACE_ONLY],
    ids=[f"{c[0]}-{m}" for c in CASES for m in ("trace", "script")
         if m == "trace" or c[0] not in TRACE_ONLY])
def test_op(name, sig_expr, specs, mode):
    module, inputs, out, expected, graph = _run_case(name, sig_expr, specs, mode)
    check_ran_in_tvm(out, expected, graph)


def _outside_reasons(module, inputs):
    return {o["op"]: o["reason"] for o in torch_tvm.explain(module, tuple(inputs)).outside}


def _gather_rows(x, i):
    return torch.index_select(x * 2.0, 0, i) + x[i].sum() + torch.gather(x, 1, i[:, None].expand(-1, 5))


@pytest.mark.parametrize("mode", ["trace", "script"])
@pytest.mark.parametrize("bad", [5, -1, 100])
def test_out_of_range_index_raises(mode, bad):
    # take / gather_elements do not bounds-check: the index goes through a
    # checking kernel that raises (as eager) instead of reading garbage.
    x = torch.randn(5, 5)
    good = torch.tensor([0, 4, 2, 1])
    module = jit(_gather_rows, [x, good], script=(mode == "script"))
    out, graph = run_jitted(module, x, good, calls=3)
    assert not outside_aten_ops(graph), graph
    torch.testing.assert_close(out, _gather_rows(x, good))
    bad_idx = torch.tensor([0, bad, 2, 1])
    with pytest.raises(Exception, match="out of bounds|out of range|index"):
        _gather_rows(x, bad_idx)  # eager raises too (a negative index_select/gather index)
    with torch.no_grad(), pytest.raises(Exception, match="out of bounds|out of range|index"):
        module(x, bad_idx)
    with torch.no_grad():  # and keeps serving good inputs
        torch.testing.assert_close(module(x, good), _gather_rows(x, good))


def _index_wraps(x, i):
    return x[:, i] * 2.0


@pytest.mark.parametrize("bad", [7, -8])
def test_advanced_index_out_of_range_raises_negative_wraps(bad):
    x = torch.randn(3, 7)
    neg = torch.tensor([-1, -7, 0, 6])
    module = jit(_index_wraps, [x, neg])
    out, graph = run_jitted(module, x, neg, calls=3)
    assert not outside_aten_ops(graph), graph
    torch.testing.assert_close(out, _index_wraps(x, neg))
    with torch.no_grad(), pytest.raises(Exception, match="out of bounds|out of range|index"):
        module(x, torch.tensor([0, bad]))


def _mask_index(x, m):
    return x[m] * 2.0


def test_bool_mask_index_stays_outside():
    # The result's shape depends on the mask's values: the support check sees
    # the mask's dtype, so x[m] stays in PyTorch with that reason (it used to
    # join the group, whose every call then fell back), and results stay right.
    x = torch.randn(4, 5)
    m = x > 0
    module = jit(_mask_index, [x, m])
    out, graph = run_jitted(module, x, m, calls=3)
    torch.testing.assert_close(out, _mask_index(x, m))
    m2 = x > 1.0
    with torch.no_grad():
        torch.testing.assert_close(module(x, m2), _mask_index(x, m2))
    assert "aten::index" in outside_aten_ops(graph), graph
    report = torch_tvm.explain(module, (x, m))
    (mask,) = [o for o in report.outside if o["op"] == "aten::index.Tensor"]
    assert mask["decision"] == "check_failed" and "data-dependent shape" in mask["reason"], mask
    assert report.num_fallbacks == 0, str(report)


def _einsum3(a, b, c):
    return torch.einsum("ij,jk,kl->il", a, b, c) + 1.0


def _einsum_ellipsis(a, b):
    return torch.einsum("...ij,...jk->...ik", a, b) * 2.0


@pytest.mark.parametrize("fn,shapes,reason", [
    (_einsum3, [(3, 4), (4, 5), (5, 2)], "more than two operands"),
    (_einsum_ellipsis, [(2, 3, 4), (2, 4, 5)], "ellipsis"),
])
def test_unsupported_einsum_stays_in_pytorch(fn, shapes, reason):
    inputs = [torch.randn(s) for s in shapes]
    module = jit(fn, inputs)
    out, graph = run_jitted(module, *inputs, calls=3)
    torch.testing.assert_close(out, fn(*inputs))
    assert outside_aten_ops(graph) == ["aten::einsum"], graph
    assert GROUP_KIND in str(graph)
    reasons = _outside_reasons(module, inputs)
    assert reason in reasons["aten::einsum"], reasons


def test_topk_ties_and_nan_follow_eager_order():
    # Many ties and NaNs: values and indices exactly as eager's topk.
    x = torch.tensor([[3.0, 1.0, 3.0, float("nan"), 3.0, 1.0, float("nan"), 0.0]] * 2)
    x[1] = x[1].flip(0)
    for largest in (True, False):
        def fn(t, largest: bool = largest):
            return torch.topk(t, 5, -1, largest=largest)
        module = jit(fn, [x])
        out, graph = run_jitted(module, x, calls=3)
        assert not outside_aten_ops(graph), graph
        expected = fn(x)
        torch.testing.assert_close(out[0], expected[0], equal_nan=True, rtol=0, atol=0)
        assert torch.equal(out[1], expected[1]), (out[1], expected[1])


def test_argmax_argmin_first_index_on_ties_and_nan():
    x = torch.tensor([[1.0, 5.0, 5.0, -2.0, -2.0], [float("nan"), 0.0, float("nan"), 7.0, -9.0],
                      [float("-inf")] * 5])

    def fn(t):
        return torch.argmax(t, 1), torch.argmin(t, 1), torch.argmin(t), torch.argmax(t[0])
    module = jit(fn, [x])
    out, graph = run_jitted(module, x, calls=3)
    assert not outside_aten_ops(graph), graph
    for a, e in zip(out, fn(x)):
        assert torch.equal(a, e), (a, e)
