"""3-d convolution and pooling (video nets such as r3d_18), and transposed 1-d
convolution: conv and max pooling run ATen's kernel as an extern call inside
the TVM group (counted in stats()["kernels"]), average pooling is TVM's."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import torch_tvm
from conftest import GROUP_KIND, assert_outputs_close, group_counters, jit, outside_aten_ops, \
    run_jitted

_G = torch.Generator().manual_seed(3)
W = torch.randn(4, 3, 3, 3, 3, generator=_G)
B = torch.randn(4, generator=_G)
WG = torch.randn(6, 1, 3, 1, 3, generator=_G)  # groups=3
WT = torch.randn(3, 4, 3, generator=_G)         # conv_transpose1d: in 3, out 4

CASES = {
    "conv3d": (lambda x: F.conv3d(x, W, B, stride=(1, 2, 1), padding=1), "aten_convolution_calls"),
    "conv3d_dilated_no_bias": (lambda x: F.conv3d(x, W, None, dilation=2, padding=(2, 1, 0)),
                               "aten_convolution_calls"),
    "conv3d_same": (lambda x: F.conv3d(x, W, B, padding="same"), "aten_convolution_calls"),
    "conv3d_groups": (lambda x: F.conv3d(x, WG, None, groups=3, padding=(1, 0, 1)),
                      "aten_convolution_calls"),
    "conv_transpose1d": (lambda x: F.conv_transpose1d(x.flatten(2), WT, stride=2, padding=1,
                                                      output_padding=1), "aten_convolution_calls"),
    "max_pool3d": (lambda x: F.max_pool3d(x, 3, 2, 1), "aten_max_pool3d_calls"),
    "max_pool3d_ceil": (lambda x: F.max_pool3d(x, 2, 2, ceil_mode=True), "aten_max_pool3d_calls"),
    "avg_pool3d": (lambda x: F.avg_pool3d(x, 3, 2, 1), None),
    "avg_pool3d_ceil_no_pad_count": (
        lambda x: F.avg_pool3d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), None),
    "adaptive_avg_pool3d_1": (lambda x: F.adaptive_avg_pool3d(x, 1), None),
    "adaptive_avg_pool3d_uneven": (lambda x: F.adaptive_avg_pool3d(x, (2, 3, 3)), None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_3d_op_runs_in_the_group_and_matches_eager(name):
    torch_tvm.enable(min_group_size=1)
    fn, counter = CASES[name]
    x = torch.randn(2, 3, 5, 9, 8, generator=torch.Generator().manual_seed(1))
    x[0, 0, 1, 1, 1] = float("nan")  # NaN kept by conv and both poolings, as in eager
    before = torch_tvm.stats()["kernels"]
    out, graph = run_jitted(jit(fn, [x]), x)
    assert GROUP_KIND in str(graph), graph
    assert not outside_aten_ops(graph), graph
    with torch.no_grad():
        assert_outputs_close(out, fn(x), rtol=1e-4, atol=1e-5, equal_nan=True)
    for gid, c in group_counters(graph).items():
        assert c["fallback_calls"] == 0, (gid, c["failures"])
    if counter:
        assert torch_tvm.stats()["kernels"][counter] > before[counter]
