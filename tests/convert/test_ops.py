"""Per-op conversion checks, tinygrad style: one line per case.

Each case is ``(name, "args: expression", input specs)``. The expression is
turned into a real function (so it can be both traced and scripted), run
through torch_tvm three times and compared with eager PyTorch. The op under
test must end up inside a TVM group: no aten op may be left to the
interpreter. min_group_size=1 so that a single op forms a group.
"""
from __future__ import annotations

import linecache
import random
import zlib

import pytest
import torch
import torch.nn.functional as F

import torch_tvm
from conftest import (GROUP_KIND, assert_outputs_close, group_counters, jit, outside_aten_ops,
                      run_jitted)

# Shapes come from a seeded RNG: odd sizes, batch > 1.
_R = random.Random(20240917)
N = _R.choice([2, 3])                  # batch
C = _R.choice([3, 5])                  # channels
H = _R.choice([7, 9, 13])              # odd spatial sizes
W = _R.choice([7, 11, 13])
L = _R.choice([13, 15, 17])            # 1d length
S = _R.choice([5, 7])                  # sequence length
D = _R.choice([6, 10, 12])             # features
O = _R.choice([4, 8])                  # output features / channels


class I:  # noqa: E742  an int64 input drawn from [lo, hi)
    def __init__(self, shape, lo=-9, hi=10):
        self.shape, self.lo, self.hi = shape, lo, hi


class P:  # a strictly positive float input (variances)
    def __init__(self, shape):
        self.shape = shape


class E:  # a float input holding the edge values below, the rest randn * 3
    def __init__(self, shape):
        self.shape = shape


# Zeros, tiny (one subnormal), huge, exp's float32 overflow and underflow
# points, softplus's default threshold, +-inf and NaN.
EDGE_VALUES = [0.0, -0.0, 1e-30, -1e-30, 1e-40, 1e30, -1e30, 1e4, -1e4, 88.0, 89.0, -87.0,
               -104.0, 19.9, 20.1, -20.1, 1.0, -1.0, 0.5, float("inf"), float("-inf"),
               float("nan")]


def make_input(spec, gen):
    if isinstance(spec, E):
        flat = torch.randn(spec.shape, generator=gen).flatten() * 3.0
        assert flat.numel() >= len(EDGE_VALUES), spec.shape
        flat[:len(EDGE_VALUES)] = torch.tensor(EDGE_VALUES)
        return flat[torch.randperm(flat.numel(), generator=gen)].reshape(spec.shape)
    if isinstance(spec, I):
        return torch.randint(spec.lo, spec.hi, spec.shape, generator=gen)
    if isinstance(spec, P):
        return torch.rand(spec.shape, generator=gen) + 0.5
    return torch.randn(spec, generator=gen)


CASES = [
    # --- arithmetic --------------------------------------------------------
    ("add", "x, y: x + y", [(N, C, H, W), (N, C, H, W)]),
    ("add_broadcast", "x, y: x + y", [(N, C, H, W), (C, 1, W)]),
    ("add_alpha", "x, y: torch.add(x, y, alpha=2.5)", [(N, D), (N, D)]),
    ("add_scalar", "x: x + 1.5", [(N, S, D)]),
    ("add_scalar_alpha", "x: torch.add(x, 2, alpha=3)", [(N, D)]),
    ("add_int", "x, y: x + y", [I((N, D)), I((N, D))]),
    ("sub", "x, y: x - y", [(N, C, H), (N, C, H)]),
    ("sub_alpha", "x, y: torch.sub(x, y, alpha=0.5)", [(N, D), (D,)]),
    ("sub_scalar", "x: x - 0.25", [(N, D)]),
    ("rsub_scalar", "x: torch.rsub(x, 1.0)", [(N, D)]),
    ("rsub_tensor_alpha", "x, y: torch.rsub(x, y, alpha=2)", [(N, D), (N, D)]),
    ("rsub_scalar_alpha", "x: torch.rsub(x, 3.0, alpha=2)", [(N, D)]),
    ("mul", "x, y: x * y", [(N, S, D), (N, S, D)]),
    ("mul_broadcast", "x, y: x * y", [(N, S, D), (S, 1)]),
    ("mul_scalar", "x: x * -3.0", [(N, S, D)]),
    ("div", "x, y: x / y", [(N, D), P((N, D))]),
    ("div_scalar", "x: x / 7", [(N, S, D)]),
    ("div_int_tensors", "x, y: x / y", [I((N, D)), I((N, D), 1, 10)]),
    ("div_int_by_scalar", "x: x / 4", [I((N, D))]),
    ("mul_int_by_float_scalar", "x: x * 0.5", [I((N, D))]),
    ("add_0d_tensor", "x, y: x + y", [(N, D), ()]),
    ("add_int_and_float", "x, y: x + y", [I((N, D)), (N, D)]),
    ("clamp_int", "x: torch.clamp(x * 2, -3, 4)", [I((N, D))]),
    ("arith_chain", "x, y: (x + y) * (x - y) / 3.0", [(N, C, H, W), (N, C, H, W)]),
    # --- convolution -------------------------------------------------------
    ("conv2d", "x, w, b: F.conv2d(x, w, b)", [(N, C, H, W), (O, C, 3, 3), (O,)]),
    ("conv2d_no_bias", "x, w: F.conv2d(x, w)", [(N, C, H, W), (O, C, 3, 3)]),
    ("conv2d_stride_pad", "x, w, b: F.conv2d(x, w, b, stride=2, padding=1)", [(N, C, H, W), (O, C, 3, 3), (O,)]),
    ("conv2d_asymmetric", "x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2))", [(N, C, H, W), (O, C, 3, 5), (O,)]),
    ("conv2d_dilation", "x, w, b: F.conv2d(x, w, b, padding=2, dilation=2)", [(N, C, H, W), (O, C, 3, 3), (O,)]),
    ("conv2d_groups", "x, w, b: F.conv2d(x, w, b, padding=1, groups=3)", [(N, 6, H, W), (9, 2, 3, 3), (9,)]),
    ("conv2d_depthwise", "x, w: F.conv2d(x, w, stride=2, groups=6)", [(N, 6, H, W), (6, 1, 3, 3)]),
    ("conv2d_same_even_kernel", "x, w, b: F.conv2d(x, w, b, padding='same')", [(N, C, H, W), (O, C, 4, 4), (O,)]),
    ("conv2d_same_dilation", "x, w: F.conv2d(x, w, padding='same', dilation=2)", [(N, C, H, W), (O, C, 3, 2)]),
    ("conv2d_valid", "x, w, b: F.conv2d(x, w, b, padding='valid')", [(N, C, H, W), (O, C, 2, 3), (O,)]),
    ("conv1d", "x, w, b: F.conv1d(x, w, b, stride=2, padding=1)", [(N, C, L), (O, C, 3), (O,)]),
    ("conv1d_same_dilation", "x, w: F.conv1d(x, w, padding='same', dilation=2)", [(N, C, L), (O, C, 4)]),
    ("conv1d_groups", "x, w, b: F.conv1d(x, w, b, groups=2, dilation=3)", [(N, 4, L), (6, 2, 3), (6,)]),
    ("conv_transpose2d", "x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)", [(N, C, H, W), (C, O, 3, 3), (O,)]),
    ("conv_transpose2d_groups_dil", "x, w: F.conv_transpose2d(x, w, stride=(2, 3), padding=(0, 1), groups=2, dilation=2)", [(N, 4, H, W), (4, 3, 3, 2)]),
    ("convolution", "x, w, b: torch.convolution(x, w, b, [2, 1], [1, 0], [1, 1], False, [0, 0], 1)", [(N, C, H, W), (O, C, 3, 3), (O,)]),
    ("convolution_transposed", "x, w, b: torch.convolution(x, w, b, [2, 2], [1, 1], [1, 1], True, [1, 0], 1)", [(N, C, H, W), (C, O, 3, 3), (O,)]),
    ("_convolution", "x, w, b: torch._convolution(x, w, b, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, False, False, True, True)", [(N, C, H, W), (O, C, 3, 3), (O,)]),
    # --- normalisation -----------------------------------------------------
    ("batch_norm", "x, m, v, g, b: F.batch_norm(x, m, v, g, b, False, 0.1, 1e-5)", [(N, C, H, W), (C,), P((C,)), (C,), (C,)]),
    ("batch_norm_no_affine", "x, m, v: F.batch_norm(x, m, v, eps=1e-3)", [(N, C, H, W), (C,), P((C,))]),
    ("batch_norm_1d", "x, m, v, g, b: F.batch_norm(x, m, v, g, b)", [(N, C, L), (C,), P((C,)), (C,), (C,)]),
    # Training mode without running statistics: batch statistics (timm's StdConv2d).
    ("batch_norm_batch_stats", "x, g, b: F.batch_norm(x, None, None, g, b, True, 0.0, 1e-5)", [(N, C, H, W), (C,), (C,)]),
    ("batch_norm_batch_stats_3d", "x: F.batch_norm(x, None, None, training=True, eps=1e-6)", [(1, O, C * H)]),
    ("reshape_as", "x, y: (x * 2).reshape_as(y) + y", [(N, C * H), (N, C, H)]),
    ("view_as", "x, y: (x + 1).view_as(y) * y", [(N, S, D), (N * S, D)]),
    ("layer_norm", f"x, g, b: F.layer_norm(x, [{D}], g, b)", [(N, S, D), (D,), (D,)]),
    ("layer_norm_no_affine_2d", f"x: F.layer_norm(x, [{H}, {W}], eps=1e-3)", [(N, C, H, W)]),
    ("group_norm", "x, g, b: F.group_norm(x, 3, g, b)", [(N, 6, H, W), (6,), (6,)]),
    ("group_norm_no_affine_1d", "x: F.group_norm(x, 2, eps=1e-3)", [(N, 4, L)]),
    # --- activations -------------------------------------------------------
    ("relu", "x: torch.relu(x)", [(N, C, H, W)]),
    ("threshold", "x: F.threshold(x, 0.1, 20.0)", [(N, D)]),
    ("clamp", "x: torch.clamp(x, -0.5, 0.75)", [(N, S, D)]),
    ("clamp_min_only", "x: torch.clamp(x, min=-0.2)", [(N, S, D)]),
    ("clamp_max_only", "x: torch.clamp(x, max=0.3)", [(N, S, D)]),
    ("hardtanh", "x: F.hardtanh(x, -0.5, 1.5)", [(N, S, D)]),
    ("sigmoid", "x: torch.sigmoid(x)", [(N, S, D)]),
    ("tanh", "x: torch.tanh(x)", [(N, S, D)]),
    ("gelu", "x: F.gelu(x)", [(N, S, D)]),
    ("gelu_tanh", "x: F.gelu(x, approximate='tanh')", [(N, S, D)]),
    ("silu", "x: F.silu(x)", [(N, S, D)]),
    ("hardswish", "x: F.hardswish(x * 4.0)", [(N, S, D)]),
    ("hardsigmoid", "x: F.hardsigmoid(x * 4.0)", [(N, S, D)]),
    # --- math (E: inputs with 0, +-tiny, +-huge, +-inf, NaN) ----------------
    ("exp", "x: torch.exp(x)", [E((N, S, D))]),
    ("exp_int", "x: torch.exp(x)", [I((N, D))]),
    ("log", "x: torch.log(x)", [E((N, S, D))]),
    ("log_int", "x: torch.log(x)", [I((N, D))]),
    ("sqrt", "x: torch.sqrt(x)", [E((N, S, D))]),
    ("sqrt_int", "x: x.sqrt()", [I((N, D))]),
    ("rsqrt", "x: torch.rsqrt(x)", [E((N, S, D))]),
    ("rsqrt_int", "x: torch.rsqrt(x)", [I((N, D))]),
    ("abs", "x: torch.abs(x)", [E((N, S, D))]),
    ("abs_int", "x: x.abs()", [I((N, D))]),
    ("erf", "x: torch.erf(x)", [E((N, S, D))]),
    ("erf_int", "x: torch.erf(x)", [I((N, D))]),
    ("math_chain", "x: torch.exp(-x * x) + torch.sqrt(torch.abs(x)) * torch.erf(x)", [(N, C, H, W)]),
    ("pow_2", "x: x ** 2", [E((N, S, D))]),
    ("pow_3", "x: torch.pow(x, 3)", [E((N, S, D))]),
    ("pow_half", "x: x ** 0.5", [E((N, S, D))]),
    ("pow_neg_half", "x: x ** -0.5", [E((N, S, D))]),
    ("pow_neg_1", "x: x ** -1", [E((N, S, D))]),
    ("pow_neg_2", "x: torch.pow(x, -2.0)", [E((N, S, D))]),
    ("pow_0", "x: x ** 0", [E((N, S, D))]),
    ("pow_1", "x: x ** 1.0", [E((N, S, D))]),
    ("pow_fraction", "x: x ** 2.5", [E((N, S, D))]),
    ("pow_neg_fraction", "x: torch.pow(x, -1.7)", [E((N, S, D))]),
    ("pow_int_3", "x: x ** 3", [I((N, D))]),
    ("pow_int_wraps", "x: x ** 7", [I((N, D), -1000, 1000)]),
    ("pow_int_0", "x: x ** 0", [I((N, D))]),
    ("pow_int_float_exponent", "x: x ** 2.5", [I((N, D), 0, 10)]),
    ("pow_tensor", "x, y: torch.pow(x, y)", [P((N, S, D)), (N, S, D)]),
    ("pow_tensor_edges", "x, y: x ** y", [E((N, S, D)), E((N, S, D))]),
    ("pow_tensor_broadcast", "x, y: x ** y", [P((N, S, D)), (D,)]),
    ("pow_tensor_0d_exponent", "x, y: x ** y", [(N, D), ()]),
    ("pow_int_base_float_exponent", "x, y: torch.pow(x, y)", [I((N, D), 1, 10), (N, D)]),
    ("pow_scalar_base", "x: 2.0 ** x", [E((N, S, D))]),
    ("pow_int_scalar_base", "x: torch.pow(3, x)", [(N, S, D)]),
    ("pow_negative_scalar_base", "x: (-1.5) ** x", [(N, S, D)]),
    ("pow_scalar_base_one", "x: 1.0 ** x", [E((N, S, D))]),
    ("pow_float_scalar_base_int_exponent", "x: 2.5 ** x", [I((N, D))]),
    ("softplus", "x: F.softplus(x)", [E((N, S, D))]),
    ("softplus_beta_threshold", "x: F.softplus(x, 2.0, 5.0)", [E((N, S, D))]),
    ("softplus_int_args", "x: F.softplus(x, beta=3, threshold=1)", [(N, S, D)]),
    ("softplus_small_beta", "x: F.softplus(x, beta=0.25, threshold=30.0)", [E((N, S, D))]),
    ("softplus_negative_beta", "x: F.softplus(x, -1.5, 4.0)", [E((N, S, D))]),
    ("mish", "x: F.mish(x)", [E((N, S, D))]),
    ("mish_chain", "x: F.mish(x * 4.0) + 1.0", [(N, C, H, W)]),
    # --- pooling -----------------------------------------------------------
    ("max_pool2d", "x: F.max_pool2d(x, 3, 2, 1)", [(N, C, H, W)]),
    ("max_pool2d_ceil", "x: F.max_pool2d(x, 2, 2, ceil_mode=True)", [(N, C, H, W)]),
    ("max_pool2d_floor", "x: F.max_pool2d(x, 2, 2, ceil_mode=False)", [(N, C, H, W)]),
    ("max_pool2d_ceil_pad_edge", "x: F.max_pool2d(x, 2, 2, 1, ceil_mode=True)", [(N, C, H, W)]),
    ("max_pool2d_rect_dilation", "x: F.max_pool2d(x, (2, 3), (1, 2), (1, 1), dilation=2)", [(N, C, H, W)]),
    ("avg_pool2d", "x: F.avg_pool2d(x, 3, 2, 1)", [(N, C, H, W)]),
    ("avg_pool2d_no_pad_count", "x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)", [(N, C, H, W)]),
    ("avg_pool2d_ceil", "x: F.avg_pool2d(x, 2, 2, ceil_mode=True)", [(N, C, H, W)]),
    ("avg_pool2d_ceil_pad_no_count", "x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)", [(N, C, H, W)]),
    ("avg_pool2d_ceil_pad_edge", "x: F.avg_pool2d(x, 2, 2, 1, ceil_mode=True)", [(N, C, H, W)]),
    ("avg_pool2d_ceil_pad_count", "x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True)", [(N, C, H, W)]),
    ("adaptive_avg_pool2d_1x1", "x: F.adaptive_avg_pool2d(x, 1)", [(N, C, H, W)]),
    ("adaptive_avg_pool2d_uneven", "x: F.adaptive_avg_pool2d(x, (3, 2))", [(N, C, H, W)]),
    # --- linear algebra ----------------------------------------------------
    ("linear", "x, w, b: F.linear(x, w, b)", [(N, D), (O, D), (O,)]),
    ("linear_no_bias_3d", "x, w: F.linear(x, w)", [(N, S, D), (O, D)]),
    ("addmm", "b, x, y: torch.addmm(b, x, y, beta=0.5, alpha=2.0)", [(O,), (N, D), (D, O)]),
    ("addmm_2d_bias", "b, x, y: torch.addmm(b, x, y)", [(N, O), (N, D), (D, O)]),
    ("matmul_2d", "x, y: torch.matmul(x, y)", [(S, D), (D, O)]),
    ("matmul_3d_2d", "x, y: torch.matmul(x, y)", [(N, S, D), (D, O)]),
    ("matmul_batched", "x, y: x @ y", [(N, S, D), (N, D, O)]),
    ("matmul_broadcast_4d", "x, y: x @ y", [(N, 2, S, D), (2, D, S)]),
    ("mm", "x, y: torch.mm(x, y)", [(S, D), (D, O)]),
    ("bmm", "x, y: torch.bmm(x, y)", [(N, S, D), (N, D, O)]),
    ("t", "x: x.t() * 2.0", [(S, D)]),
    ("transpose", "x: x.transpose(1, -1) + 1.0", [(N, S, D)]),
    ("swapaxes", "x: torch.swapaxes(x, 0, -1) * 2.0", [(N, S, D)]),
    ("swapdims", "x: x.swapdims(1, 2) - 1.0", [(N, S, D)]),
    ("permute", "x: x.permute(0, 3, -3, 2) - 1.0", [(N, C, H, W)]),
    # --- shape -------------------------------------------------------------
    ("flatten", "x: torch.flatten(x, 1)", [(N, C, H, W)]),
    ("flatten_middle", "x: torch.flatten(x, 1, 2)", [(N, C, H, W)]),
    ("reshape", f"x: x.reshape(-1, {W})", [(N, C, H, W)]),
    ("view", f"x: x.view({N}, -1) * 2.0", [(N, C, H, W)]),
    ("contiguous", "x: x.transpose(0, 1).contiguous()", [(N, S, D)]),
    ("cat3", "x, y, z: torch.cat([x, y, z], 1)", [(N, 2, H), (N, 3, H), (N, 1, H)]),
    ("cat_negative_dim", "x, y: torch.cat([x, y], -1)", [(N, S, D), (N, S, 3)]),
    ("leaky_relu", "x: torch.nn.functional.leaky_relu(x) + x", [E((N, S, D))]),
    ("leaky_relu_slope", "x: torch.nn.functional.leaky_relu(x, 0.2) * 2", [(N, C, H, W)]),
    ("pad_last2", "x: torch.nn.functional.pad(x, (1, 2, 3, 0)) + 1", [(N, 2, H)]),
    ("pad_value", "x: torch.nn.functional.pad(x, (2, 2), value=-1.5) * 2", [(N, S, D)]),
    ("constant_pad_nd", "x: torch.constant_pad_nd(x, [0, 1, 1, 1, 2, 0], 0.25) + x.sum()",
     [(N, 2, H)]),
    ("chunk_uneven", "x: torch.chunk(x, 3, 1)", [(N, 7, D)]),
    ("chunk_fewer_pieces", "x: torch.chunk(x, 4, -1)", [(N, S, 5)]),
    ("split_int", "x: torch.split(x, 5, 2)", [(N, C, 13)]),
    ("split_sizes", "x: torch.split(x, [2, 3, 2], 1)", [(N, 7, D)]),
    ("squeeze_all", "x: torch.squeeze(x) + 1.0", [(N, 1, D, 1)]),
    ("squeeze_dim", "x: torch.squeeze(x, 1) + 1.0", [(N, 1, D)]),
    ("squeeze_non_one_dim", "x: torch.squeeze(x, 2) + 1.0", [(N, 1, D)]),
    ("squeeze_dims", "x: torch.squeeze(x, (1, 3)) * 2.0", [(N, 1, D, 1)]),
    ("unsqueeze", "x: torch.unsqueeze(x, 0) + torch.unsqueeze(x, -1)", [(D,)]),
    # --- reductions and friends -------------------------------------------
    ("mean_dim", "x: torch.mean(x, [2, 3])", [(N, C, H, W)]),
    ("mean_keepdim", "x: torch.mean(x, -1, keepdim=True)", [(N, S, D)]),
    ("sum_dim", "x: torch.sum(x, 1)", [(N, S, D)]),
    ("sum_dims_keepdim", "x: torch.sum(x, [-1, 0], keepdim=True)", [(N, S, D)]),
    ("sum_dtype", "x: torch.sum(x, [1], dtype=torch.float64)", [(N, S, D)]),
    ("softmax", "x: torch.softmax(x, -1)", [(N, S, D)]),
    ("softmax_dim1", "x: torch.softmax(x, 1)", [(N, C, H, W)]),
    ("log_softmax", "x: torch.log_softmax(x, -2)", [(N, S, D)]),
    ("mean_all", "x: torch.mean(x) + x", [(N, S, D)]),
    ("sum_all", "x: torch.sum(x) * x", [(N, S, D)]),
    ("relu6", "x: F.relu6(x * 4.0)", [(N, S, D)]),
    ("neg", "x: -x + 1.0", [(N, S, D)]),
    ("slice", "x: x[:, 1:-1:2] * 2.0", [(N, S, D)]),
    ("split_getitem", "x: torch.split(x * 2.0, 2, 1)[1] + 1.0", [(N, S, D)]),
    ("unflatten", "x: (x + 1.0).unflatten(-1, (2, -1)) * 2.0", [(N, S, D)]),
    ("slice_open_end", "x: x[..., 2:] + 1.0", [(N, S, D)]),
    ("expand", "x: x[:, :1].expand(-1, 5, -1) + 1.0", [(N, S, D)]),
    ("expand_as", "x, y: torch.sigmoid(x).expand_as(y) * y", [(N, 1, 1), (N, S, D)]),
    ("sdpa", "q, k, v: F.scaled_dot_product_attention(q, k, v)", [(N, 2, S, D), (N, 2, 5, D), (N, 2, 5, D)]),
    ("sdpa_causal", "q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)", [(N, 2, S, D), (N, 2, S, D), (N, 2, S, D)]),
    ("sdpa_float_mask", "q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)", [(N, 2, S, D), (N, 2, S, D), (N, 2, S, D), (S, S)]),
    ("max_dim_keepdim", "x: torch.max(x, 1, keepdim=True)", [(N, S, D)]),
    ("max_dim", "x: torch.max(x, -1)", [(N, S, D)]),
    ("max_dim_indices_used", "x: torch.max(x, 2)[1] + 1", [(N, S, D)]),
    ("dropout_eval", "x: F.dropout(x, 0.5, False) * 2.0", [(N, S, D)]),
    ("feature_dropout_eval", "x: torch.feature_dropout(x, 0.5, False) + 1.0", [(N, C, H, W)]),
]


def _make_fn(name, sig_expr):
    """A real Python function (source in linecache, so scriptable)."""
    sig, expr = sig_expr.split(":", 1)
    fname = "case_" + name
    src = f"def {fname}({sig.strip()}):\n    return {expr.strip()}\n"
    filename = f"<torch_tvm op case {name}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    namespace = {"torch": torch, "F": F, "__name__": "torch_tvm_op_cases"}
    exec(compile(src, filename, "exec"), namespace)
    return namespace[fname]


def test_case_table_is_well_formed():
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"


@pytest.fixture(autouse=True)
def _single_op_groups(tvm_enabled):
    torch_tvm.enable(min_group_size=1)


def run_case(name, sig_expr, specs, mode, make=make_input):
    """One case, traced or scripted, run 3 times: (module, inputs, out, expected, graph).
    Shared by the per-family case tables (test_ops_*.py)."""
    fn = _make_fn(name, sig_expr)
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    inputs = [make(s, gen) for s in specs]
    with torch.no_grad():
        expected = fn(*inputs)
    module = jit(fn, inputs, script=(mode == "script"))
    out, graph = run_jitted(module, *inputs, calls=3)
    return module, inputs, out, expected, graph


def check_ran_in_tvm(out, expected, graph):
    """Every aten op of the case ran in a TVM group, with no fallback, and the
    outputs match eager (dtype and shape included, NaN at the same places)."""
    assert GROUP_KIND in str(graph), f"no TVM group formed:\n{graph}"
    left = outside_aten_ops(graph)
    assert not left, f"ops left to PyTorch: {left}\n{graph}"
    assert_outputs_close(out, expected, rtol=1e-4, atol=1e-5, equal_nan=True)
    for a, e in zip(out if isinstance(out, (list, tuple)) else [out],
                    expected if isinstance(expected, (list, tuple)) else [expected]):
        assert a.dtype == e.dtype and a.shape == e.shape, (a.dtype, e.dtype, a.shape, e.shape)
    # The values came from TVM, not from a PyTorch fallback.
    counters = group_counters(graph)
    assert counters, "the graph's groups are not in torch_tvm.stats()"
    for gid, c in counters.items():
        assert c["fallback_calls"] == 0 and c["compiles"] >= 1, (gid, c["failures"])


@pytest.mark.parametrize("mode", ["trace", "script"])
@pytest.mark.parametrize("name,sig_expr,specs", CASES, ids=[c[0] for c in CASES])
def test_op(name, sig_expr, specs, mode):
    _, _, out, expected, graph = run_case(name, sig_expr, specs, mode)
    check_ran_in_tvm(out, expected, graph)


def _int_pow_tensor_exponent(x, y):
    return (x + 1) ** y + 2 ** y


@pytest.mark.parametrize("mode", ["trace", "script"])
def test_integer_pow_with_tensor_exponent_stays_in_pytorch(mode):
    # TVM's power is float-only: the partitioner leaves integer ** integer
    # tensor out of the groups (it sees the profiled dtypes), so nothing falls back.
    gen = torch.Generator().manual_seed(7)
    x, y = torch.randint(-5, 5, (N, D), generator=gen), torch.randint(0, 6, (N, D), generator=gen)
    module = jit(_int_pow_tensor_exponent, [x, y], script=(mode == "script"))
    out, graph = run_jitted(module, x, y, calls=3)
    assert outside_aten_ops(graph).count("aten::pow") == 2, graph
    assert GROUP_KIND in str(graph), graph  # x + 1 and the final add
    torch.testing.assert_close(out, _int_pow_tensor_exponent(x, y))
    # explain() lists both pows outside. It reads the executed graph, whose
    # outer values have lost their profiled dtypes, so it cannot repeat the
    # partitioner's reason (tests/cpp/test_registry.cpp checks that reason).
    report = torch_tvm.explain(module, (x, y))
    assert sorted(o["op"] for o in report.outside) == ["aten::pow.Scalar",
                                                        "aten::pow.Tensor_Tensor"], report.outside
    assert report.num_fallbacks == 0, str(report)


def _bn_training_with_stats(x, m, v):
    return torch.relu(F.batch_norm(x * 2, m, v, None, None, True, 0.1, 1e-5)) + 1


def test_training_batch_norm_with_running_stats_stays_in_pytorch():
    # It updates the running statistics in place: left to PyTorch, with that reason.
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(N, C, H, W, generator=gen)
    m, v = torch.zeros(C), torch.ones(C)
    m_ref, v_ref = m.clone(), v.clone()
    module = jit(_bn_training_with_stats, [x, m, v])
    m.copy_(m_ref), v.copy_(v_ref)  # tracing ran it once
    out, graph = run_jitted(module, x, m, v, calls=3)
    for _ in range(3):
        expected = _bn_training_with_stats(x, m_ref, v_ref)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close((m, v), (m_ref, v_ref))  # updated in place as eager does
    assert "aten::batch_norm" in outside_aten_ops(graph), graph
    report = torch_tvm.explain(module, (x, m, v))
    reasons = {o["op"]: o["reason"] for o in report.outside}
    assert "updates its running statistics" in reasons["aten::batch_norm"], reasons
