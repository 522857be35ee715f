"""TVM's own conv kernel as a candidate beside oneDNN (torch_tvm/_tvm_convs.py).

Per-op numerics against eager with the conv forced to TVM, the choice applied
from a database (counter), the rebuild on oneDNN when the database has no
record of the fused kernel, and a tiny tune() that measures the choice.
Asserted from counters, files and results, never from timings.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from tvm.s_tir import meta_schedule as ms

import torch_tvm
from torch_tvm import _tuning, _tvm_convs

from test_tuning import _run  # noqa: E402 - tests/compile is on sys.path (pytest rootdir)


@pytest.fixture(autouse=True)
def _clean():
    yield
    _tvm_convs.leave_to_tvm = None
    _tvm_convs._decisions.clear()
    _tuning.option_path = None
    _tuning._warned.clear()


class ConvBlock(torch.nn.Module):
    def __init__(self, c, k, kernel, stride, padding, groups, dilation=1, act=True):
        super().__init__()
        self.conv = torch.nn.Conv2d(c, k, kernel, stride, padding, dilation=dilation,
                                    groups=groups, bias=False)
        self.bn = torch.nn.BatchNorm2d(k)
        self.act = act

    def forward(self, x):
        y = self.bn(self.conv(x))
        return torch.nn.functional.relu6(y) if self.act else y


def _randomise(m):
    torch.manual_seed(1)
    with torch.no_grad():
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.uniform_(-0.5, 0.5)
    return m.eval()


@pytest.mark.parametrize("c,kernel,stride,padding,dilation,batch", [
    (16, 3, 1, 1, 1, 1),
    (13, 3, 2, 1, 1, 3),   # channels off the vector width, batch 3
    (24, 5, 2, 2, 1, 1),
    (8, 3, 1, 0, 1, 3),
    (32, 3, 1, 2, 2, 1),
    (7, 3, 2, 1, 1, 1),
])
def test_depthwise_on_tvm_matches_eager(c, kernel, stride, padding, dilation, batch):
    m = _randomise(ConvBlock(c, c, kernel, stride, padding, groups=c, dilation=dilation))
    x = torch.randn(batch, c, 17, 19)
    calls = torch_tvm.stats()["kernels"].get("conv2d_calls", 0)
    _tvm_convs.leave_to_tvm = lambda sig: sig.depthwise
    out = _run(m, x)
    torch.testing.assert_close(out, m(x), rtol=1e-4, atol=1e-5)
    assert torch_tvm.stats()["kernels"].get("conv2d_calls", 0) == calls  # oneDNN never ran


@pytest.mark.parametrize("groups,stride", [(1, 1), (1, 2), (4, 1)])
def test_dense_and_grouped_conv_on_tvm_matches_eager(groups, stride):
    m = _randomise(ConvBlock(8, 12, 3, stride, 1, groups=groups))
    x = torch.randn(3, 8, 15, 15)
    _tvm_convs.leave_to_tvm = lambda sig: True
    out = _run(m, x)
    torch.testing.assert_close(out, m(x), rtol=1e-4, atol=1e-5)


def test_nan_and_inf_through_a_tvm_conv_match_eager():
    m = _randomise(ConvBlock(8, 8, 3, 1, 1, groups=8))
    x = torch.randn(1, 8, 9, 9)
    x[0, 1, 2, 3] = float("nan")
    x[0, 2, 4, 4] = float("inf")
    _tvm_convs.leave_to_tvm = lambda sig: True
    torch.testing.assert_close(_run(m, x), m(x), rtol=1e-4, atol=1e-5, equal_nan=True)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dw = ConvBlock(16, 16, 3, 1, 1, groups=16)
        self.pw = torch.nn.Conv2d(16, 24, 1)

    def forward(self, x):
        return self.pw(self.dw(x))


def _net():
    m = Net()
    _randomise(m.dw)
    return m.eval(), torch.randn(1, 16, 20, 20)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    wd = tmp_path_factory.mktemp("tvm_convs")
    m, x = _net()
    report = torch_tvm.tune(m, [x], wd, trials=16, num_trials_per_iter=8, progress=False)
    return wd, report


def test_tune_measures_each_conv_choice(tuned):
    wd, report = tuned
    choices = json.loads((wd / _tuning.CHOICES_FILE).read_text())
    convs = [(k, c) for k, c in choices.items() if json.loads(k)[0] == "conv2d"]
    assert convs
    for key, entry in convs:  # one per fusion pattern the offload tried (with/without bias)
        assert json.loads(key)[1][-2] == 16  # the depthwise conv; the 1x1 one stays oneDNN
        assert json.loads(key)[1][-1] == entry["epilogue"]  # keyed on the fused chain too
        assert entry["kernel"] in ("tvm", "onednn")
        assert set(entry["times_us"]) == {"onednn", "tvm"}
        assert entry["epilogue"][-2:] == ["maximum", "minimum"]  # relu6, fused in TVM's kernel
    assert any("conv2d" in t.name for t in report.tasks)


def _db_choosing_tvm(wd, dest, keep_records: bool):
    """A copy of the tuned database whose choice is "tvm", with every task's
    best record (keep_records) or none."""
    shutil.copytree(wd, dest)
    for name in (_tuning.MS_WORKLOADS, _tuning.MS_RECORDS):
        (dest / name).unlink(missing_ok=True)
    if keep_records:
        search = ms.database.JSONDatabase(work_dir=str(dest / _tuning.SEARCH_DIR))
        search.dump_pruned(ms.database.JSONDatabase(str(dest / _tuning.MS_WORKLOADS),
                                                    str(dest / _tuning.MS_RECORDS)))
    choices = json.loads((dest / _tuning.CHOICES_FILE).read_text())
    for k, c in choices.items():
        if json.loads(k)[0] == "conv2d":
            c["kernel"] = "tvm"
    (dest / _tuning.CHOICES_FILE).write_text(json.dumps(choices))
    return dest


def test_tvm_choice_is_applied_and_counted(tuned, tmp_path):
    wd, _ = tuned
    db = _db_choosing_tvm(wd, tmp_path / "db", keep_records=True)
    m, x = _net()
    before = dict(_tuning.counters)
    onednn = torch_tvm.stats()["kernels"].get("conv2d_calls", 0)
    torch_tvm.enable(tuning_db=str(db))
    out = _run(m, x)
    torch.testing.assert_close(out, m(x), rtol=1e-4, atol=1e-5)
    assert _tuning.counters["tvm_convs"] - before["tvm_convs"] == 1
    assert _tuning.counters["tvm_conv_misses"] == before["tvm_conv_misses"]
    assert torch_tvm.stats()["kernels"]["conv2d_calls"] - onednn == 3  # the 1x1 conv only
    text = str(torch_tvm.explain(torch.jit.trace(m, [x]), [x]))
    assert "g16 1x20x20x16->16 (+" in text and "-> TVM (" in text


def test_tvm_choice_without_a_record_is_rebuilt_on_onednn(tuned, tmp_path):
    wd, _ = tuned
    db = _db_choosing_tvm(wd, tmp_path / "db", keep_records=False)
    m, x = _net()
    before = dict(_tuning.counters)
    torch_tvm.enable(tuning_db=str(db))
    out = _run(m, x)
    torch.testing.assert_close(out, m(x), rtol=1e-4, atol=1e-5)
    assert _tuning.counters["tvm_conv_misses"] - before["tvm_conv_misses"] == 1
    assert _tuning.counters["tvm_convs"] == before["tvm_convs"]


def test_bad_scope_is_refused(tmp_path):
    m, x = _net()
    with pytest.raises(ValueError, match="tvm_convs must be one of"):
        torch_tvm.tune(m, [x], tmp_path, tvm_convs="some")
