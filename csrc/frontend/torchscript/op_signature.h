// The TorchScript front door's view of one node: its schema key and the
// neutral op-call view (convert/op_call.h) that the converter table reads.
//
// Everything that looks at a torch::jit::Node on behalf of the table lives in
// this folder: the partitioner asks here whether a node can be converted, the
// graph converter builds each call's inputs here, explain() walks graphs here.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <optional>
#include <string>

#include "convert/op_call.h"
#include "convert/registry.h"

namespace torch_tvm::frontend {

// "aten::add.Tensor" for a node with a schema, its kind otherwise.
std::string SchemaKey(const torch::jit::Node* node);

// The node as an op call: its inputs' static types and the values known at
// compile time (prim::Constant inputs). TorchScript nodes already carry every
// schema argument, defaults included. prim::ConstantChunk's attributes
// (chunks, dim) become arguments 1 and 2.
convert::OpSignature Signature(const torch::jit::Node* node);

// Arguments the signature adds beyond the node's inputs (attributes), as
// compile-time values, in order.
std::vector<c10::IValue> AttributeArgs(const torch::jit::Node* node);

// The table's answers for a node.
std::optional<convert::Rejection> CheckSupport(const torch::jit::Node* node);
std::optional<std::string> UnsupportedReason(const torch::jit::Node* node);
bool IsPlumbing(const torch::jit::Node* node);
bool IsPureView(const torch::jit::Node* node);
bool IsShapeQuery(const torch::jit::Node* node);

}  // namespace torch_tvm::frontend
