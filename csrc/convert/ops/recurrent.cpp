// Recurrent layers: aten::lstm.input and aten::gru.input (what nn.LSTM / nn.GRU
// record, traced or scripted) run ATen's own kernel, at::lstm / at::gru, as one
// extern call inside the group (csrc/kernels/aten_kernels.cpp): the same call
// eager makes (oneDNN's RNN primitive for float32), so the results match eager
// exactly. The weights (a list of GetAttr parameters, constants of the group)
// and the hidden states are separate tensor arguments; the kernel returns
// (output, hy[, cy]) as one tuple.
//
// PackedSequence inputs (aten::lstm.data / gru.data) have no converter and stay
// in PyTorch.
#include <ATen/ATen.h>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

// (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
constexpr size_t kDropout = 5, kTrain = 6;

// Dropout between layers is random: left to PyTorch. With train=False (every
// eval-mode module) or dropout=0 it does nothing, as in eager.
std::optional<std::string> DropoutCheck(const OpSignature& op) {
  auto train = op.ConstantArg(kTrain), p = op.ConstantArg(kDropout);
  if (train && train->isBool() && train->toBool() && p && p->isDouble() && p->toDouble() > 0) {
    return op.key + " in training mode with dropout > 0 is random; it stays in PyTorch";
  }
  return std::nullopt;
}

bool IsFloat32Or64(const std::string& dtype) { return dtype == "float32" || dtype == "float64"; }

void Recurrent(ConvertContext& ctx, bool lstm) {
  RelaxBuilder& bb = ctx.bb;
  const std::string name = lstm ? "lstm" : "gru";
  TensorInfo x = ctx.Info(0);
  if (x.ndim() != 3) {
    throw std::runtime_error(name + " expects a 3-d input (nn." + (lstm ? "LSTM" : "GRU") +
                             " adds the batch dimension of an unbatched one before the call)");
  }
  if (!IsFloat32Or64(x.dtype)) throw std::runtime_error(name + " of a " + x.dtype + " input");
  std::vector<Expr> hx = lstm ? ctx.TensorList(1) : std::vector<Expr>{ctx.Tensor(1)};
  std::vector<Expr> params = ctx.TensorList(2);
  bool has_biases = ctx.Bool(3), train = ctx.Bool(kTrain);
  bool bidirectional = ctx.Bool(7), batch_first = ctx.Bool(8);
  int64_t num_layers = ctx.Int(4);
  if (train && ctx.Double(kDropout) > 0) {
    throw std::runtime_error(name + " in training mode with dropout > 0 is random");
  }
  if (hx.size() != (lstm ? 2u : 1u)) throw std::runtime_error("lstm expects two hidden states");
  const int64_t directions = bidirectional ? 2 : 1;
  const int64_t batch = x.shape[batch_first ? 0 : 1], steps = x.shape[batch_first ? 1 : 0];
  std::vector<TensorInfo> h;
  for (const Expr& e : hx) {
    h.push_back(bb.InfoOf(e));
    if (h.back().ndim() != 3 || h.back().shape != std::vector<int64_t>{directions * num_layers, batch, h.back().shape[2]}) {
      throw std::runtime_error(name + ": a hidden state does not have the expected shape");
    }
    if (h.back().dtype != x.dtype) throw std::runtime_error(name + ": hidden state dtype differs");
  }
  // LSTM with proj_size > 0: h has proj_size features, c hidden_size, and each
  // layer and direction has one more weight (w_hr). at::lstm computes it.
  const bool projected = lstm && h[0].shape[2] != h[1].shape[2];
  const int64_t per_layer = (has_biases ? 4 : 2) + (projected ? 1 : 0);
  if (static_cast<int64_t>(params.size()) != per_layer * directions * num_layers) {
    throw std::runtime_error(name + ": expected " +
                             std::to_string(per_layer * directions * num_layers) +
                             " weights, got " + std::to_string(params.size()));
  }
  for (const Expr& p : params) {
    if (bb.InfoOf(p).dtype != x.dtype) throw std::runtime_error(name + ": weight dtype differs");
  }
  std::vector<int64_t> out = {steps, batch, directions * h[0].shape[2]};
  if (batch_first) std::swap(out[0], out[1]);
  std::vector<RelaxBuilder::OutputType> outs = {{out, x.dtype}};
  for (const TensorInfo& t : h) outs.push_back({t.shape, t.dtype});

  std::vector<int64_t> cfg = {has_biases, num_layers, train, bidirectional, batch_first};
  std::vector<Expr> args = {ctx.Tensor(0)};
  args.insert(args.end(), hx.begin(), hx.end());
  args.insert(args.end(), params.begin(), params.end());
  args.push_back(bb.Constant(at::tensor(cfg, at::kLong)));
  Expr result = bb.CallExternTuple("torch_tvm.kernels.aten_" + name, args, outs);
  for (size_t i = 0; i < outs.size(); ++i) ctx.SetOutput(i, bb.TupleGetItem(result, i));
}

}  // namespace

TORCH_TVM_CONVERTERS(recurrent) {
  reg.Register("aten::lstm.input", [](ConvertContext& c) { Recurrent(c, /*lstm=*/true); },
               DropoutCheck);
  reg.Register("aten::gru.input", [](ConvertContext& c) { Recurrent(c, /*lstm=*/false); },
               DropoutCheck);
}

}  // namespace torch_tvm::convert
