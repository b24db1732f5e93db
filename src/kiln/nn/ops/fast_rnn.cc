// com.kiln.LSTM: the common LSTM (default activations, no peepholes, no clip, no sequence_lens,
// layout 0) on packed GEMMs. The input projection of all time steps is one GEMM; each step is a
// small GEMM of the hidden state against the packed recurrent weights whose epilogue adds that
// step's input projection; the gates use the vectorised sigmoid/tanh. Same inputs, attributes and
// outputs as ONNX LSTM; the fast_ops pass routes only the LSTMs this covers, and the reference
// kernel (rnn.cc) remains the oracle.
#include <cstring>
#include <memory>

#include "kiln/nn/kernels/gemm.h"
#include "kiln/nn/kernels/vmath.h"
#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

struct LstmDirection {
  kernels::PackedWeights w;  // X -> gates, bias Wb + Rb folded in
  kernels::PackedWeights r;  // h -> gates
  bool reverse = false;
};

Result<KernelPtr> prepare_lstm(PrepareContext& ctx) {
  for (size_t i = 0; i < 3; ++i) KILN_RETURN_IF_ERROR(ctx.require_input(i));
  const TensorInfo& x = ctx.input(0);
  if (x.dtype != DType::kFloat32 || x.rank() != 3) return ctx.unsupported("X must be float32 [seq, batch, input]");
  const Tensor* w = ctx.require_constant(1, "W");
  const Tensor* r = ctx.require_constant(2, "R");
  if (!w || !r) return ctx.sticky_error();
  if (ctx.has_input(4) || ctx.has_input(7)) return ctx.unsupported("sequence_lens and peepholes use the reference LSTM");
  if (ctx.has_attr("activations") || ctx.has_attr("clip") || ctx.attr_int("input_forget", 0) != 0 ||
      ctx.attr_int("layout", 0) != 0)
    return ctx.unsupported("non-default activations, clip, input_forget and layout use the reference LSTM");
  const std::string direction = ctx.attr_string("direction", "forward");
  const int64_t dirs = direction == "bidirectional" ? 2 : 1;
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    return ctx.invalid("unknown direction '", direction, "'");
  const int64_t seq = x.shape[0], batch = x.shape[1], in = x.shape[2];
  const int64_t h = ctx.attr_int("hidden_size", r->rank() == 3 ? r->shape()[2] : 0);
  if (w->dtype() != DType::kFloat32 || r->dtype() != DType::kFloat32 || w->shape() != Shape{dirs, 4 * h, in} ||
      r->shape() != Shape{dirs, 4 * h, h} || h < 1)
    return ctx.invalid("W ", shape_to_string(w->shape()), " / R ", shape_to_string(r->shape()),
                       " do not match hidden_size ", h, ", input ", in, " and ", dirs, " direction(s)");
  const Tensor* b = nullptr;
  if (ctx.has_input(3)) {
    b = ctx.require_constant(3, "B");
    if (!b) return ctx.sticky_error();
    if (b->dtype() != DType::kFloat32 || b->shape() != Shape{dirs, 8 * h}) return ctx.invalid("B must be [dirs, 8H]");
  }
  const Shape state{dirs, batch, h};
  for (size_t i : {size_t{5}, size_t{6}})
    if (ctx.has_input(i) && (ctx.input(i).shape != state || ctx.input(i).dtype != DType::kFloat32))
      return ctx.invalid("initial state ", i == 5 ? "initial_h" : "initial_c", " must be float32", shape_to_string(state));
  ctx.set_output(0, DType::kFloat32, {seq, dirs, batch, h});
  ctx.set_output(1, DType::kFloat32, state);
  ctx.set_output(2, DType::kFloat32, state);
  const bool want_y = ctx.has_output(0), want_h = ctx.has_output(1), want_c = ctx.has_output(2);
  const bool has_h0 = ctx.has_input(5), has_c0 = ctx.has_input(6);

  const kernels::GemmConfig& cfg = kernels::gemm_config();
  auto plan = std::make_shared<std::vector<LstmDirection>>();
  for (int64_t d = 0; d < dirs; ++d) {
    std::vector<float> bias(static_cast<size_t>(4 * h), 0.f);
    if (b)
      for (int64_t j = 0; j < 4 * h; ++j) bias[j] = b->data<float>()[d * 8 * h + j] + b->data<float>()[d * 8 * h + 4 * h + j];
    LstmDirection dir;
    dir.w = kernels::pack_weights(cfg, w->data<float>() + d * 4 * h * in, in, 4 * h, in, true, bias.data());
    dir.r = kernels::pack_weights(cfg, r->data<float>() + d * 4 * h * h, h, 4 * h, h, true, nullptr);
    dir.reverse = direction == "reverse" || d == 1;
    plan->push_back(std::move(dir));
  }
  // Scratch: input projections [seq*batch, 4H], gates [batch, 4H], h and c [batch, H] each.
  const int64_t xp_floats = seq * batch * 4 * h, g_floats = batch * 4 * h, s_floats = batch * h;
  ctx.request_scratch(static_cast<size_t>(xp_floats + g_floats + 2 * s_floats + 64) * sizeof(float));
  const kernels::VectorMath& vm = kernels::vector_math();
  return make_kernel(
      [=, &cfg, &vm](const KernelContext& k) {
        float* xp = static_cast<float*>(k.scratch);
        float* gates = xp + xp_floats;
        float* hs = gates + g_floats;
        float* cs = hs + s_floats;
        const float* xin = k.in(0).as<const float>();
        kernels::GemmParams none;
        for (int64_t d = 0; d < dirs; ++d) {
          const LstmDirection& dir = (*plan)[d];
          kernels::gemm(cfg, seq * batch, xin, in, dir.w, xp, 4 * h, none, k.pool);
          if (has_h0) std::memcpy(hs, k.in(5).as<const float>() + d * s_floats, s_floats * sizeof(float));
          else std::memset(hs, 0, s_floats * sizeof(float));
          if (has_c0) std::memcpy(cs, k.in(6).as<const float>() + d * s_floats, s_floats * sizeof(float));
          else std::memset(cs, 0, s_floats * sizeof(float));
          for (int64_t step = 0; step < seq; ++step) {
            const int64_t t = dir.reverse ? seq - 1 - step : step;
            kernels::GemmParams p;
            p.residual = xp + t * batch * 4 * h;
            p.ld_residual = 4 * h;
            kernels::gemm(cfg, batch, hs, h, dir.r, gates, 4 * h, p, nullptr);
            for (int64_t bi = 0; bi < batch; ++bi) {
              float* g = gates + bi * 4 * h;  // i, o, f, c
              vm.sigmoid(g, g, 3 * h);
              vm.tanh(g + 3 * h, g + 3 * h, h);
              float* c = cs + bi * h;
              float* hv = hs + bi * h;
              for (int64_t j = 0; j < h; ++j) c[j] = g[2 * h + j] * c[j] + g[j] * g[3 * h + j];
              vm.tanh(c, hv, h);
              for (int64_t j = 0; j < h; ++j) hv[j] *= g[h + j];
            }
            if (want_y)
              std::memcpy(k.out(0).as<float>() + (t * dirs + d) * batch * h, hs, s_floats * sizeof(float));
          }
          if (want_h) std::memcpy(k.out(1).as<float>() + d * s_floats, hs, s_floats * sizeof(float));
          if (want_c) std::memcpy(k.out(2).as<float>() + d * s_floats, cs, s_floats * sizeof(float));
        }
        return Status::ok();
      },
      cfg.name);
}

constexpr OpDef kRnnOps[] = {
    {"com.kiln", "LSTM", 1, 1, prepare_lstm},
};

}  // namespace

std::span<const OpDef> fast_rnn_ops() { return kRnnOps; }

}  // namespace kiln::nn::ops
