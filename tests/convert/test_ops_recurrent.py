"""nn.LSTM / nn.GRU (aten::lstm.input, aten::gru.input) and embedding_bag.

Each runs ATen's own kernel (at::lstm, at::gru, at::embedding_bag) as one
extern call with several outputs inside the TVM group, so the results match
eager's exactly; the kernel counters in torch_tvm.stats()["kernels"] prove it
ran. Traced and scripted (the scripted module code keeps nn.LSTM's preamble:
the unbatched-input branch and the zero initial state, whose aten::zeros takes
the input's device at run time and stays in PyTorch).
"""
from __future__ import annotations

import warnings
import zlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torch_tvm
from conftest import (GROUP_KIND, assert_outputs_close, group_counters, jit, ops_in_groups,
                      outside_aten_ops, run_jitted)
from test_ops import D, N, O, S

# What scripted nn.LSTM/GRU/EmbeddingBag code leaves outside besides the op
# under test: the branch for an unbatched input (unsqueeze/squeeze views),
# the default zero state (aten::zeros on the input's run-time device), the
# Optional plumbing, and F.embedding_bag's offsets for a 2-d input (aten::arange
# on the input's run-time device).
_SCRIPT_PREAMBLE = {"aten::unsqueeze", "aten::squeeze", "aten::zeros", "aten::arange",
                    "prim::Uninitialized", "prim::unchecked_cast", "prim::TupleIndex"}


@pytest.fixture(autouse=True)
def _single_op_groups(tvm_enabled):
    torch_tvm.enable(min_group_size=1)


def _kernel_calls(counter):
    return torch_tvm.stats()["kernels"][counter]


def _check_ran_in_tvm(graph, op, mode, counter, before):
    """`op` ran inside a TVM group, nothing fell back, and its kernel ran."""
    assert GROUP_KIND in str(graph), graph
    assert any(k == op for k in ops_in_groups(graph)), graph
    left = outside_aten_ops(graph)
    assert op not in left, graph
    if mode == "trace":
        assert not left, f"ops left to PyTorch: {left}\n{graph}"
    else:
        assert set(left) <= _SCRIPT_PREAMBLE, f"ops left to PyTorch: {left}\n{graph}"
    counters = group_counters(graph)
    assert counters, "the graph's groups are not in torch_tvm.stats()"
    for gid, c in counters.items():
        assert c["fallback_calls"] == 0, (gid, c["failures"])
    assert any(c["compiles"] >= 1 and any(k.split(".")[0] == op for k in c["ops"])
               for c in counters.values()), counters
    assert _kernel_calls(counter) > before


# --- recurrent layers -------------------------------------------------------

class _Rnn(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)


class _LstmWithState(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, h, c):
        return self.rnn(x, (h, c))


class _GruWithState(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, h):
        return self.rnn(x, h)


# name -> (constructor, batch_first, pass an initial state)
RNN_CASES = {
    "lstm_1layer": (lambda: nn.LSTM(D, O), False, False),
    "lstm_2layers_batch_first": (lambda: nn.LSTM(D, O, 2, batch_first=True), True, False),
    "lstm_bidirectional": (lambda: nn.LSTM(D, O, 2, bidirectional=True), False, False),
    "lstm_bidirectional_batch_first_state": (
        lambda: nn.LSTM(D, O, 1, bidirectional=True, batch_first=True), True, True),
    "lstm_2layers_state": (lambda: nn.LSTM(D, O, 2), False, True),
    "lstm_no_bias": (lambda: nn.LSTM(D, O, bias=False), False, False),
    "lstm_proj": (lambda: nn.LSTM(D, O, 2, proj_size=3), False, False),
    "lstm_proj_bidirectional_state": (
        lambda: nn.LSTM(D, O, 1, proj_size=2, bidirectional=True, batch_first=True), True, True),
    # Dropout between layers does nothing in eval mode (train=False), as in eager.
    "lstm_dropout_eval": (lambda: nn.LSTM(D, O, 2, dropout=0.5), False, False),
    "gru_1layer": (lambda: nn.GRU(D, O), False, False),
    "gru_2layers_batch_first": (lambda: nn.GRU(D, O, 2, batch_first=True), True, False),
    "gru_bidirectional": (lambda: nn.GRU(D, O, 2, bidirectional=True), False, False),
    "gru_bidirectional_state": (lambda: nn.GRU(D, O, 1, bidirectional=True), False, True),
    "gru_2layers_batch_first_state": (lambda: nn.GRU(D, O, 2, batch_first=True), True, True),
    "gru_no_bias": (lambda: nn.GRU(D, O, bias=False), False, False),
}


def _rnn_module_and_inputs(name, nan=False):
    make, batch_first, with_state = RNN_CASES[name]
    torch.manual_seed(zlib.crc32(name.encode()))
    rnn = make().eval()
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    x = torch.randn((N, S, D) if batch_first else (S, N, D), generator=gen)
    if nan:
        x[(0, 1, 2) if batch_first else (1, 0, 2)] = float("nan")
    inputs = [x]
    if with_state:
        layers = rnn.num_layers * (2 if rnn.bidirectional else 1)
        h_size = rnn.proj_size if getattr(rnn, "proj_size", 0) > 0 else rnn.hidden_size
        inputs.append(torch.randn(layers, N, h_size, generator=gen))
        if isinstance(rnn, nn.LSTM):
            inputs.append(torch.randn(layers, N, rnn.hidden_size, generator=gen))
    lstm = isinstance(rnn, nn.LSTM)
    wrap = (_LstmWithState if lstm else _GruWithState) if with_state else _Rnn
    return wrap(rnn).eval(), inputs, ("aten::lstm" if lstm else "aten::gru"), \
        ("aten_lstm_calls" if lstm else "aten_gru_calls")


@pytest.mark.parametrize("mode", ["trace", "script"])
@pytest.mark.parametrize("name", sorted(RNN_CASES))
def test_rnn(name, mode):
    module, inputs, op, counter = _rnn_module_and_inputs(name)
    with torch.no_grad():
        expected = module(*inputs)
    jitted = jit(module, inputs, script=(mode == "script"))
    before = _kernel_calls(counter)
    out, graph = run_jitted(jitted, *inputs, calls=3)
    _check_ran_in_tvm(graph, op, mode, counter, before)
    # The same ATen call as eager: equal up to rtol 1e-5 (in practice bitwise).
    assert_outputs_close(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["lstm_2layers_batch_first", "gru_bidirectional"])
def test_rnn_nan_propagates_as_in_eager(name):
    module, inputs, op, counter = _rnn_module_and_inputs(name, nan=True)
    with torch.no_grad():
        expected = module(*inputs)
    assert torch.isnan(expected[0]).any() and not torch.isnan(expected[0]).all()
    before = _kernel_calls(counter)
    out, graph = run_jitted(jit(module, inputs), *inputs, calls=3)
    _check_ran_in_tvm(graph, op, "trace", counter, before)
    assert_outputs_close(out, expected, rtol=1e-5, atol=1e-6, equal_nan=True)


def _lstm_train_dropout(x, h, c, w_ih, w_hh, w_ih1, w_hh1):
    y, hy, cy = torch.lstm(x * 2.0, [h, c], [w_ih, w_hh, w_ih1, w_hh1], False, 2, 0.5, True,
                           False, False)
    return y.abs() * 0.0 + 1.0


@pytest.mark.parametrize("mode", ["trace", "script"])
def test_lstm_training_dropout_stays_in_pytorch(mode):
    # Dropout between layers in training mode is random: the partitioner
    # leaves the lstm outside with that reason; the rest still runs in TVM.
    gen = torch.Generator().manual_seed(5)
    x, h, c = torch.randn(S, N, D, generator=gen), torch.randn(2, N, O, generator=gen), \
        torch.randn(2, N, O, generator=gen)
    ws = [torch.randn(4 * O, D, generator=gen), torch.randn(4 * O, O, generator=gen),
          torch.randn(4 * O, O, generator=gen), torch.randn(4 * O, O, generator=gen)]
    inputs = [x, h, c, *ws]
    module = jit(_lstm_train_dropout, inputs, script=(mode == "script"))
    before = _kernel_calls("aten_lstm_calls")
    out, graph = run_jitted(module, *inputs, calls=3)
    assert "aten::lstm" in outside_aten_ops(graph), graph
    assert GROUP_KIND in str(graph), graph  # x * 2.0 and the tail
    assert _kernel_calls("aten_lstm_calls") == before
    torch.testing.assert_close(out, torch.ones(S, N, O))
    report = torch_tvm.explain(module, tuple(inputs))
    lstm = [o for o in report.outside if o["op"] == "aten::lstm.input"]
    assert lstm, report.outside
    assert report.num_fallbacks == 0, str(report)
    for g in group_counters(graph).values():
        assert g["fallback_calls"] == 0, g


def test_lstm_training_dropout_reason():
    # The support check's reason, as explain() reports it for a traced graph
    # whose constants it can read.
    gen = torch.Generator().manual_seed(6)
    x, h, c = torch.randn(S, N, D, generator=gen), torch.randn(2, N, O, generator=gen), \
        torch.randn(2, N, O, generator=gen)
    ws = [torch.randn(4 * O, D, generator=gen), torch.randn(4 * O, O, generator=gen),
          torch.randn(4 * O, O, generator=gen), torch.randn(4 * O, O, generator=gen)]
    inputs = (x, h, c, *ws)
    module = jit(_lstm_train_dropout, inputs)
    report = torch_tvm.explain(module, inputs)
    reasons = [o["reason"] for o in report.outside if o["op"] == "aten::lstm.input"]
    assert any("dropout" in r and "training" in r for r in reasons), report.outside


# --- embedding_bag ----------------------------------------------------------

NUM_EMB = 11
_GEN = torch.Generator().manual_seed(11)
_BAG_IDX = torch.tensor([1, 2, 3, 4, 2, 7, 10, 0, 2, 2], dtype=torch.long)
_BAG_OFF = torch.tensor([0, 3, 3, 6, 9])          # an empty bag, a bag of one
_BAG_OFF_LAST = torch.tensor([0, 3, 3, 6, 9, 10])  # include_last_offset


class _Bag(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.bag = nn.EmbeddingBag(NUM_EMB, D, **kw)

    def forward(self, i, o):
        return self.bag(i, o)


class _BagWeighted(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.bag = nn.EmbeddingBag(NUM_EMB, D, **kw)

    def forward(self, i, o, p):
        return self.bag(i, o, p)


class _Bag2d(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.bag = nn.EmbeddingBag(NUM_EMB, D, **kw)

    def forward(self, i):
        return self.bag(i)


# name -> (module, inputs)
def _bag_cases():
    p = torch.rand(_BAG_IDX.shape, generator=_GEN)
    idx2d = _BAG_IDX[:9].reshape(3, 3)
    return {
        "sum": (_Bag(mode="sum"), [_BAG_IDX, _BAG_OFF]),
        "mean": (_Bag(mode="mean"), [_BAG_IDX, _BAG_OFF]),
        "max": (_Bag(mode="max"), [_BAG_IDX, _BAG_OFF]),
        "sum_last_offset": (_Bag(mode="sum", include_last_offset=True), [_BAG_IDX, _BAG_OFF_LAST]),
        "mean_last_offset": (_Bag(mode="mean", include_last_offset=True),
                             [_BAG_IDX, _BAG_OFF_LAST]),
        "max_last_offset": (_Bag(mode="max", include_last_offset=True), [_BAG_IDX, _BAG_OFF_LAST]),
        "sum_padding_idx": (_Bag(mode="sum", padding_idx=2), [_BAG_IDX, _BAG_OFF]),
        "mean_padding_idx": (_Bag(mode="mean", padding_idx=2), [_BAG_IDX, _BAG_OFF]),
        "max_negative_padding_idx": (_Bag(mode="max", padding_idx=-1), [_BAG_IDX, _BAG_OFF]),
        "sum_per_sample_weights": (_BagWeighted(mode="sum"), [_BAG_IDX, _BAG_OFF, p]),
        "sum_per_sample_weights_padding": (_BagWeighted(mode="sum", padding_idx=2),
                                           [_BAG_IDX, _BAG_OFF, p]),
        "mean_2d_input": (_Bag2d(mode="mean"), [idx2d]),
        "max_2d_input_padding": (_Bag2d(mode="max", padding_idx=2), [idx2d]),
        "sum_int32_indices": (_Bag(mode="sum"), [_BAG_IDX.int(), _BAG_OFF.int()]),
    }


BAG_CASES = _bag_cases()


@pytest.mark.parametrize("mode", ["trace", "script"])
@pytest.mark.parametrize("name", sorted(BAG_CASES))
def test_embedding_bag_module(name, mode):
    module, inputs = BAG_CASES[name]
    module.eval()
    with torch.no_grad():
        expected = module(*inputs)
    jitted = jit(module, inputs, script=(mode == "script"))
    before = _kernel_calls("aten_embedding_bag_calls")
    out, graph = run_jitted(jitted, *inputs, calls=3)
    _check_ran_in_tvm(graph, "aten::embedding_bag", mode, "aten_embedding_bag_calls", before)
    assert_outputs_close(out, expected, rtol=1e-5, atol=1e-6)


def _bag_all_outputs(w, i, o, p):
    return torch.embedding_bag(w, i, o, False, 0, False, p, False, None)


def _bag_all_outputs_mean(w, i, o):
    return torch.embedding_bag(w, i, o, False, 1, False, None, False)


def _bag_all_outputs_max_pad(w, i, o):
    return torch.embedding_bag(w, i, o, False, 2, False, None, True, 3)


def _bag_all_outputs_sum_pad(w, i, o):
    return torch.embedding_bag(w, i, o, False, 0, False, None, False, 2)


def _bag_all_outputs_f64(w, i, o):
    return torch.embedding_bag(w.double(), i, o, False, 0, False, None, False)


# The bookkeeping outputs too (offset2bag, bag_size, max_indices), whose shapes
# the converter declares statically: each mode, padding_idx, per_sample_weights.
ALL_OUTPUT_CASES = {
    "sum_weighted": (_bag_all_outputs, [_BAG_OFF, True]),
    "mean": (_bag_all_outputs_mean, [_BAG_OFF, False]),
    "max_last_offset_padding": (_bag_all_outputs_max_pad, [_BAG_OFF_LAST, False]),
    "sum_padding": (_bag_all_outputs_sum_pad, [_BAG_OFF, False]),
    "sum_float64": (_bag_all_outputs_f64, [_BAG_OFF, False]),
}


@pytest.mark.parametrize("mode", ["trace", "script"])
@pytest.mark.parametrize("name", sorted(ALL_OUTPUT_CASES))
def test_embedding_bag_all_outputs(name, mode):
    fn, (offsets, weighted) = ALL_OUTPUT_CASES[name]
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    w = torch.randn(NUM_EMB, D, generator=gen)
    inputs = [w, _BAG_IDX, offsets]
    if weighted:
        inputs.append(torch.rand(_BAG_IDX.shape, generator=gen))
    expected = fn(*inputs)
    jitted = jit(fn, inputs, script=(mode == "script"))
    before = _kernel_calls("aten_embedding_bag_calls")
    out, graph = run_jitted(jitted, *inputs, calls=3)
    _check_ran_in_tvm(graph, "aten::embedding_bag", "trace", "aten_embedding_bag_calls", before)
    assert_outputs_close(out, expected, rtol=1e-5, atol=1e-6)
    for a, e in zip(out, expected):
        assert a.dtype == e.dtype and a.shape == e.shape


def _bag_sum_last_offset_all(w, i, o):
    return torch.embedding_bag(w, i, o, False, 0, False, None, True)


def test_embedding_bag_sum_last_offset_bookkeeping_falls_back():
    # For mode="sum" with include_last_offset, bag_size / max_indices have one
    # entry per offset when the weight does not require grad and one per bag
    # when it does (ATen's two kernels): the group cannot see which, so when
    # they are used it falls back to PyTorch, results as eager.
    w = torch.randn(NUM_EMB, D, generator=torch.Generator().manual_seed(2))
    inputs = [w, _BAG_IDX, _BAG_OFF_LAST]
    jitted = jit(_bag_sum_last_offset_all, inputs)
    out, graph = run_jitted(jitted, *inputs, calls=3)
    assert_outputs_close(out, _bag_sum_last_offset_all(*inputs))
    failures = [f for g in group_counters(graph).values() for f in g["failures"].values()]
    assert any("embedding_bag" in f and "output 2 unset" in f for f in failures), failures
    # With a weight that requires grad eager's shapes differ; still as eager.
    wp = nn.Parameter(w.clone())
    with torch.no_grad():
        assert_outputs_close(jitted(wp, _BAG_IDX, _BAG_OFF_LAST),
                             _bag_sum_last_offset_all(wp, _BAG_IDX, _BAG_OFF_LAST))


@pytest.mark.parametrize("mode", ["trace", "script"])
@pytest.mark.parametrize("bad", [NUM_EMB, -1, 1000])
def test_embedding_bag_out_of_range_index_raises(mode, bad):
    module, inputs = BAG_CASES["mean"]
    module.eval()
    jitted = jit(module, inputs, script=(mode == "script"))
    out, graph = run_jitted(jitted, *inputs, calls=3)
    with torch.no_grad():
        torch.testing.assert_close(out, module(*inputs))
    bad_idx = _BAG_IDX.clone()
    bad_idx[4] = bad
    with torch.no_grad(), pytest.raises(RuntimeError, match="not in the valid range"):
        module(bad_idx, inputs[1])  # eager raises
    before = _kernel_calls("aten_embedding_bag_calls")
    with torch.no_grad(), pytest.raises(RuntimeError, match="not in the valid range"):
        jitted(bad_idx, inputs[1])
    assert _kernel_calls("aten_embedding_bag_calls") > before  # the TVM group's kernel ran
    with torch.no_grad():  # and keeps serving good inputs
        torch.testing.assert_close(jitted(*inputs), module(*inputs))


def test_embedding_bag_bad_offsets_raise():
    module, inputs = BAG_CASES["sum"]
    module.eval()
    jitted = jit(module, inputs)
    run_jitted(jitted, *inputs, calls=3)
    bad_off = torch.tensor([0, 3, 3, 6, 11])  # past the end of the indices
    with torch.no_grad(), pytest.raises(RuntimeError, match="offsets"):
        jitted(_BAG_IDX, bad_off)


@pytest.mark.parametrize("bag_mode", ["sum", "mean", "max"])
def test_embedding_bag_nan_propagates_as_in_eager(bag_mode):
    module = _Bag(mode=bag_mode).eval()
    with torch.no_grad():
        module.bag.weight[3, 1] = float("nan")
        module.bag.weight[7, 0] = float("-inf")
    inputs = [_BAG_IDX, _BAG_OFF]
    with torch.no_grad():
        expected = module(*inputs)
    if bag_mode != "max":  # sum / mean carry the NaN into its bag (max: whatever eager does)
        assert torch.isnan(expected).any()
    before = _kernel_calls("aten_embedding_bag_calls")
    out, graph = run_jitted(jit(module, inputs), *inputs, calls=3)
    _check_ran_in_tvm(graph, "aten::embedding_bag", "trace", "aten_embedding_bag_calls", before)
    assert_outputs_close(out, expected, rtol=1e-5, atol=1e-6, equal_nan=True)
