"""Data-dependent shapes and traced shape arithmetic: the partitioner and the
converters must agree, so a group never takes a node it cannot compile (the
whole group would then run in PyTorch on every call).

The patterns are torchvision's detection code as traced: a boolean-mask
index per class (data-dependent length), `_topk_min`'s
`min(cat([tensor([k]), _shape_as_tensor(x)[0:1]]))` feeding aten::Int, and
`batch_images`'s `stack([sizes])` -> ceil -> Int -> pad.
"""
from __future__ import annotations

import torch

import torch_tvm
from conftest import assert_outputs_close, group_counters, jit, ops_in_groups, run_jitted


def _topk_min(x: torch.Tensor, k: int) -> torch.Tensor:
    # torchvision.models.detection._utils._topk_min as it traces
    axis_dim = torch._shape_as_tensor(x)[0].unsqueeze(0)
    return torch.min(torch.cat((torch.tensor([k], dtype=axis_dim.dtype), axis_dim), 0))


def _per_class_boxes(boxes, logits):
    scores = torch.softmax(logits, -1)
    out_boxes, out_scores = [], []
    for label in range(1, 4):
        score = scores[:, label]
        keep = score > 0.3
        score, box = score[keep], boxes[keep]  # boolean masks: data-dependent length
        score, idxs = score.topk(_topk_min(score, 5))  # a 0-d tensor k: aten::Int
        out_boxes.append(box[idxs])
        out_scores.append(score)
    return torch.cat(out_boxes) * 2.0, torch.cat(out_scores)


def _no_fallbacks(graph):
    counters = group_counters(graph)
    assert counters, graph
    for gid, g in counters.items():
        assert g["compile_failures"] == 0 and g["fallback_calls"] == 0, (gid, g["failures"])
    return counters


def test_boolean_mask_index_stays_outside_and_the_rest_compiles():
    boxes, logits = torch.randn(50, 4), torch.randn(50, 4)
    module = jit(_per_class_boxes, [boxes, logits])
    out, graph = run_jitted(module, boxes, logits)
    assert_outputs_close(out, _per_class_boxes(boxes, logits))
    _no_fallbacks(graph)
    inside = ops_in_groups(graph)
    # the fixed-shape work around the masks runs in TVM
    for op in ("aten::softmax", "aten::topk", "aten::_shape_as_tensor", "aten::Int"):
        assert op in inside, (op, inside)

    report = torch_tvm.explain(module, (boxes, logits))
    masks = [o for o in report.outside if o["op"] == "aten::index.Tensor"]
    # score[keep] and boxes[keep] for each of the 3 classes
    assert len(masks) == 6, report.outside
    for o in masks:
        assert o["decision"] == "check_failed" and "boolean mask" in o["reason"], o
    assert report.num_fallbacks == 0, str(report)


def test_boolean_mask_results_follow_the_data():
    """New data gives new mask counts, so new specs: each result matches eager."""
    torch.manual_seed(3)
    boxes, logits = torch.randn(50, 4), torch.randn(50, 4)
    module = jit(_per_class_boxes, [boxes, logits])
    run_jitted(module, boxes, logits)
    for _ in range(4):
        b, lg = torch.randn(50, 4), torch.randn(50, 4)
        with torch.no_grad():
            assert_outputs_close(module(b, lg), _per_class_boxes(b, lg))
    _no_fallbacks(torch.jit.last_executed_optimized_graph())


def _topk_of_relu(x):
    y = torch.relu(x) + 1.0
    values, _ = y.topk(_topk_min(y, 7))
    return values * 2.0


def test_shape_as_tensor_arithmetic_folds_into_topk():
    for n in (20, 4):  # k = min(7, n): 7, then the shape's 4
        x = torch.randn(n)
        module = jit(_topk_of_relu, [x])
        out, graph = run_jitted(module, x)
        assert out.shape == (min(7, n),)
        torch.testing.assert_close(out, _topk_of_relu(x))
        _no_fallbacks(graph)
        inside = ops_in_groups(graph)
        for op in ("aten::_shape_as_tensor", "aten::cat", "aten::min", "aten::Int",
                   "aten::topk"):
            assert op in inside, (op, inside)


def _pad_to_multiple_of_32(x):
    # torchvision's GeneralizedRCNNTransform._onnx_batch_images, one image. It
    # runs only when traced, where x.shape[i] is a 0-d tensor.
    max_size = []
    for i in range(x.dim()):
        max_size.append(torch.max(torch.stack([x.shape[i]]).to(torch.float32)).to(torch.int64))
    h = (torch.ceil(max_size[1].to(torch.float32) / 32) * 32).to(torch.int64)
    w = (torch.ceil(max_size[2].to(torch.float32) / 32) * 32).to(torch.int64)
    padded = torch.nn.functional.pad(x, (0, w - x.shape[2], 0, h - x.shape[1]))
    return torch.sigmoid(padded) * 2.0


def test_stacked_sizes_fold_into_a_pad():
    for shape in ((3, 40, 50), (3, 64, 33)):
        x = torch.randn(*shape)
        module = jit(_pad_to_multiple_of_32, [x])
        out, graph = run_jitted(module, x)
        h, w = -(-shape[1] // 32) * 32, -(-shape[2] // 32) * 32
        expected = torch.sigmoid(
            torch.nn.functional.pad(x, (0, w - shape[2], 0, h - shape[1]))) * 2.0
        assert out.shape == expected.shape and out.shape[1] % 32 == 0 and out.shape[2] % 32 == 0
        torch.testing.assert_close(out, expected)
        _no_fallbacks(graph)
        inside = ops_in_groups(graph)
        for op in ("aten::stack", "aten::ceil", "aten::Int", "aten::pad"):
            assert op in inside, (op, inside)


def _int_of_data(x):
    n = int(x.sum() > 0) + 1  # the data decides: not known at compile time
    return torch.relu(x).repeat(n, 1) * 3.0


def test_int_of_data_stays_outside():
    x = torch.randn(4, 5)
    module = jit(_int_of_data, [x])
    out, graph = run_jitted(module, x)
    torch.testing.assert_close(out, _int_of_data(x))
    assert "aten::Int" not in ops_in_groups(graph)
    for g in group_counters(graph).values():
        assert g["compile_failures"] == 0, g["failures"]
