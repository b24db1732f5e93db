// Recurrent layers: RNN, GRU and LSTM, in every direction and layout, with custom activations,
// clipping, per-batch sequence lengths and all optional inputs and outputs.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

enum class Cell { kRnn, kGru, kLstm };

enum class ActKind {
  kRelu,
  kTanh,
  kSigmoid,
  kAffine,
  kLeakyRelu,
  kThresholdedRelu,
  kScaledTanh,
  kHardSigmoid,
  kElu,
  kSoftsign,
  kSoftplus
};

struct Activation {
  ActKind kind = ActKind::kTanh;
  float alpha = 0, beta = 0;
};

template <typename T>
T apply(const Activation& a, T x) {
  const T al = static_cast<T>(a.alpha), be = static_cast<T>(a.beta);
  switch (a.kind) {
    case ActKind::kRelu: return x > T(0) ? x : T(0);
    case ActKind::kTanh: return std::tanh(x);
    case ActKind::kSigmoid: return T(1) / (T(1) + std::exp(-x));
    case ActKind::kAffine: return al * x + be;
    case ActKind::kLeakyRelu: return x >= T(0) ? x : al * x;
    case ActKind::kThresholdedRelu: return x >= al ? x : T(0);
    case ActKind::kScaledTanh: return al * std::tanh(be * x);
    case ActKind::kHardSigmoid: return std::min(std::max(al * x + be, T(0)), T(1));
    case ActKind::kElu: return x >= T(0) ? x : al * (std::exp(x) - T(1));
    case ActKind::kSoftsign: return x / (T(1) + std::fabs(x));
    case ActKind::kSoftplus: return x > T(30) ? x : std::log1p(std::exp(x));
  }
  return x;
}

// Parses an activation name (case-insensitive, as ONNX Runtime does); alpha and beta are taken
// from the attribute lists in order, by the functions that use them, else the defaults of the
// ONNX operator of the same name.
Status parse_activation(const PrepareContext& ctx, const std::string& name, const std::vector<float>& alphas,
                        size_t& ai, const std::vector<float>& betas, size_t& bi, Activation* out) {
  std::string n;
  for (char c : name) n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  struct Known {
    const char* name;
    ActKind kind;
    bool uses_alpha, uses_beta;
    float alpha, beta;
  };
  static constexpr Known kKnown[] = {
      {"relu", ActKind::kRelu, false, false, 0, 0},
      {"tanh", ActKind::kTanh, false, false, 0, 0},
      {"sigmoid", ActKind::kSigmoid, false, false, 0, 0},
      {"affine", ActKind::kAffine, true, true, 1.0f, 0.0f},
      {"leakyrelu", ActKind::kLeakyRelu, true, false, 0.01f, 0},
      {"thresholdedrelu", ActKind::kThresholdedRelu, true, false, 1.0f, 0},
      {"scaledtanh", ActKind::kScaledTanh, true, true, 1.0f, 1.0f},
      {"hardsigmoid", ActKind::kHardSigmoid, true, true, 0.2f, 0.5f},
      {"elu", ActKind::kElu, true, false, 1.0f, 0},
      {"softsign", ActKind::kSoftsign, false, false, 0, 0},
      {"softplus", ActKind::kSoftplus, false, false, 0, 0},
  };
  for (const Known& k : kKnown) {
    if (n != k.name) continue;
    out->kind = k.kind;
    out->alpha = k.alpha;
    out->beta = k.beta;
    if (k.uses_alpha && ai < alphas.size()) out->alpha = alphas[ai++];
    if (k.uses_beta && bi < betas.size()) out->beta = betas[bi++];
    return Status::ok();
  }
  return ctx.unsupported("activation function '", name, "' is not one of Relu, Tanh, Sigmoid, Affine, LeakyRelu, ",
                         "ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus");
}

// Everything the time loop needs, fixed at compile time.
struct RnnPlan {
  Cell cell = Cell::kRnn;
  const char* op_name = "RNN";
  int64_t seq = 0, batch = 0, input = 0, hidden = 0, dirs = 1, gates = 1;
  bool reverse_only = false;  // direction=reverse: the single direction runs backwards
  bool batch_first = false;   // layout=1
  bool linear_before_reset = false, input_forget = false;
  bool has_clip = false;
  float clip = 0;
  bool has_b = false, has_lens = false, has_h0 = false, has_c0 = false, has_p = false;
  bool lens_int64 = false;
  bool out_y = false, out_yh = false, out_yc = false;
  std::vector<Activation> acts;  // acts_per_dir * dirs
  size_t acts_per_dir = 1;
};

template <typename T>
T clip_value(const RnnPlan& p, T x) {
  if (!p.has_clip) return x;
  const T c = static_cast<T>(p.clip);
  return x < -c ? -c : (x > c ? c : x);
}

// out[j] = sum_k v[k] * m[j * len + k] + bias[j], for j in [0, rows).
template <typename T>
void matvec(const T* m, const T* v, int64_t rows, int64_t len, const T* bias, T* out) {
  for (int64_t j = 0; j < rows; ++j) {
    const T* row = m + j * len;
    T acc = bias ? bias[j] : T(0);
    for (int64_t k = 0; k < len; ++k) acc += row[k] * v[k];
    out[j] = acc;
  }
}

template <typename T>
Status run_rnn(const RnnPlan& p, const KernelContext& kc) {
  const int64_t S = p.seq, N = p.batch, I = p.input, H = p.hidden, D = p.dirs, G = p.gates;
  const T* x = kc.in(0).as<const T>();
  const T* w_all = kc.in(1).as<const T>();
  const T* r_all = kc.in(2).as<const T>();
  const T* b_all = p.has_b ? kc.in(3).as<const T>() : nullptr;
  const T* h0_all = p.has_h0 ? kc.in(5).as<const T>() : nullptr;
  const T* c0_all = p.has_c0 ? kc.in(6).as<const T>() : nullptr;
  const T* p_all = p.has_p ? kc.in(7).as<const T>() : nullptr;
  T* y = p.out_y ? kc.out(0).as<T>() : nullptr;
  T* yh = p.out_yh ? kc.out(1).as<T>() : nullptr;
  T* yc = p.out_yc ? kc.out(2).as<T>() : nullptr;

  // Sequence lengths are data: check them before touching anything.
  auto len_of = [&](int64_t b) -> int64_t {
    if (!p.has_lens) return S;
    return p.lens_int64 ? kc.in(4).as<const int64_t>()[b] : kc.in(4).as<const int32_t>()[b];
  };
  for (int64_t b = 0; b < N; ++b) {
    const int64_t len = len_of(b);
    if (len < 0 || len > S)
      return Status::out_of_range(p.op_name, ": sequence_lens[", b, "] = ", len, " is outside [0, ", S, "]");
  }
  // Steps past a sequence's end produce zeros.
  if (y && p.has_lens)
    for (int64_t i = 0, n = kc.out(0).num_elements(); i < n; ++i) y[i] = T(0);

  // Scratch: h and c states [batch, hidden], then the input-side and hidden-side gate
  // pre-activations of one batch row [gates * hidden] each, and a temporary [hidden].
  T* h = static_cast<T*>(kc.scratch);
  T* c = h + N * H;
  T* gx = c + N * H;
  T* gh = gx + G * H;
  T* tmp = gh + G * H;

  auto x_at = [&](int64_t t, int64_t b) { return x + (p.batch_first ? (b * S + t) : (t * N + b)) * I; };
  auto y_at = [&](int64_t t, int64_t d, int64_t b) {
    return y + (p.batch_first ? ((b * S + t) * D + d) : ((t * D + d) * N + b)) * H;
  };
  auto state_off = [&](int64_t d, int64_t b) { return (p.batch_first ? (b * D + d) : (d * N + b)) * H; };

  for (int64_t d = 0; d < D; ++d) {
    const bool backward = p.reverse_only || d == 1;
    const T* w = w_all + d * G * H * I;
    const T* r = r_all + d * G * H * H;
    const T* wb = b_all ? b_all + d * 2 * G * H : nullptr;
    const T* rb = b_all ? wb + G * H : nullptr;
    const T* peep = p_all ? p_all + d * 3 * H : nullptr;
    const Activation* act = p.acts.data() + d * p.acts_per_dir;
    for (int64_t b = 0; b < N; ++b) {
      for (int64_t j = 0; j < H; ++j) {
        h[b * H + j] = h0_all ? h0_all[state_off(d, b) + j] : T(0);
        c[b * H + j] = c0_all ? c0_all[state_off(d, b) + j] : T(0);
      }
    }
    for (int64_t b = 0; b < N; ++b) {
      const int64_t len = len_of(b);
      T* hb = h + b * H;
      T* cb = c + b * H;
      for (int64_t s = 0; s < len; ++s) {
        const int64_t t = backward ? len - 1 - s : s;
        matvec(w, x_at(t, b), G * H, I, wb, gx);
        switch (p.cell) {
          case Cell::kRnn: {
            matvec(r, hb, H, H, rb, gh);
            for (int64_t j = 0; j < H; ++j) hb[j] = apply(act[0], clip_value(p, gx[j] + gh[j]));
            break;
          }
          case Cell::kGru: {
            // Gates z and r first; the hidden gate needs r.
            matvec(r, hb, 2 * H, H, rb, gh);
            T* z = gx;
            T* rg = gx + H;
            for (int64_t j = 0; j < 2 * H; ++j) gx[j] = apply(act[0], clip_value(p, gx[j] + gh[j]));
            const T* rh = r + 2 * H * H;
            const T* rbh = rb ? rb + 2 * H : nullptr;
            T* hh = gh + 2 * H;
            if (p.linear_before_reset) {
              matvec(rh, hb, H, H, rbh, hh);
              for (int64_t j = 0; j < H; ++j) hh[j] = rg[j] * hh[j];
            } else {
              for (int64_t j = 0; j < H; ++j) tmp[j] = rg[j] * hb[j];
              matvec(rh, tmp, H, H, rbh, hh);
            }
            for (int64_t j = 0; j < H; ++j) {
              const T cand = apply(act[1], clip_value(p, gx[2 * H + j] + hh[j]));
              hb[j] = (T(1) - z[j]) * cand + z[j] * hb[j];
            }
            break;
          }
          case Cell::kLstm: {
            matvec(r, hb, 4 * H, H, rb, gh);
            // Gate order i, o, f, c; peepholes i, o, f.
            for (int64_t j = 0; j < H; ++j) {
              T pre_i = gx[j] + gh[j], pre_f = gx[2 * H + j] + gh[2 * H + j];
              if (peep) {
                pre_i += peep[j] * cb[j];
                pre_f += peep[2 * H + j] * cb[j];
              }
              const T ig = apply(act[0], clip_value(p, pre_i));
              const T fg = p.input_forget ? T(1) - ig : apply(act[0], clip_value(p, pre_f));
              const T cand = apply(act[1], clip_value(p, gx[3 * H + j] + gh[3 * H + j]));
              const T cell = fg * cb[j] + ig * cand;
              T pre_o = gx[H + j] + gh[H + j];
              if (peep) pre_o += peep[H + j] * cell;
              const T og = apply(act[0], clip_value(p, pre_o));
              cb[j] = cell;
              hb[j] = og * apply(act[2], cell);
            }
            break;
          }
        }
        if (y) {
          T* yrow = y_at(t, d, b);
          for (int64_t j = 0; j < H; ++j) yrow[j] = hb[j];
        }
      }
      if (yh)
        for (int64_t j = 0; j < H; ++j) yh[state_off(d, b) + j] = hb[j];
      if (yc)
        for (int64_t j = 0; j < H; ++j) yc[state_off(d, b) + j] = cb[j];
    }
  }
  return Status::ok();
}

template <Cell C>
Result<KernelPtr> prepare_rnn(PrepareContext& ctx) {
  for (size_t i = 0; i < 3; ++i) KILN_RETURN_IF_ERROR(ctx.require_input(i));
  const TensorInfo& xi = ctx.input(0);
  const TensorInfo& ri = ctx.input(2);
  const DType dt = xi.dtype;
  if (dt != DType::kFloat32 && dt != DType::kFloat64) return ctx.unsupported_dtype(0);
  RnnPlan p;
  p.cell = C;
  p.op_name = C == Cell::kRnn ? "RNN" : (C == Cell::kGru ? "GRU" : "LSTM");
  p.gates = C == Cell::kRnn ? 1 : (C == Cell::kGru ? 3 : 4);
  p.acts_per_dir = C == Cell::kRnn ? 1 : (C == Cell::kGru ? 2 : 3);
  const std::string dir = ctx.attr_string("direction", "forward");
  if (dir != "forward" && dir != "reverse" && dir != "bidirectional")
    return ctx.invalid("direction must be forward, reverse or bidirectional, got '", dir, "'");
  p.dirs = dir == "bidirectional" ? 2 : 1;
  p.reverse_only = dir == "reverse";
  const int64_t layout = ctx.opset() >= 14 ? ctx.attr_int("layout", 0) : 0;
  if (layout != 0 && layout != 1) return ctx.invalid("layout must be 0 or 1, got ", layout);
  p.batch_first = layout == 1;
  if (C == Cell::kGru) p.linear_before_reset = ctx.attr_int("linear_before_reset", 0) != 0;
  if (C == Cell::kLstm) p.input_forget = ctx.attr_int("input_forget", 0) != 0;
  if (ctx.has_attr("clip")) {
    p.has_clip = true;
    p.clip = ctx.attr_float("clip", 0);
    if (!(p.clip > 0)) return ctx.invalid("clip must be a positive threshold, got ", p.clip);
  }

  const size_t max_inputs = C == Cell::kLstm ? 8 : 6;
  if (ctx.num_inputs() > max_inputs)
    return ctx.invalid("takes at most ", max_inputs, " inputs, got ", ctx.num_inputs());
  for (size_t i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i) && i != 4 && ctx.input(i).dtype != dt)
      return ctx.invalid("input ", i, " has dtype ", dtype_name(ctx.input(i).dtype), ", expected ", dtype_name(dt));
  if (xi.rank() != 3) return ctx.invalid("input X must have rank 3, got ", shape_to_string(xi.shape));
  p.seq = p.batch_first ? xi.shape[1] : xi.shape[0];
  p.batch = p.batch_first ? xi.shape[0] : xi.shape[1];
  p.input = xi.shape[2];
  if (ri.rank() != 3) return ctx.invalid("input R must have rank 3, got ", shape_to_string(ri.shape));
  p.hidden = ctx.attr_int("hidden_size", ri.shape[2]);
  if (p.hidden != ri.shape[2] || p.hidden <= 0)
    return ctx.invalid("hidden_size ", p.hidden, " must be positive and equal the last dimension of R ",
                       shape_to_string(ri.shape));
  const int64_t D = p.dirs, G = p.gates, H = p.hidden, N = p.batch;
  auto expect_shape = [&](size_t i, const char* name, const Shape& want) -> Status {
    if (ctx.input(i).shape != want)
      return ctx.invalid("input ", name, " must have shape ", shape_to_string(want), ", got ",
                         shape_to_string(ctx.input(i).shape));
    return Status::ok();
  };
  KILN_RETURN_IF_ERROR(expect_shape(1, "W", {D, G * H, p.input}));
  KILN_RETURN_IF_ERROR(expect_shape(2, "R", {D, G * H, H}));
  const Shape state = p.batch_first ? Shape{N, D, H} : Shape{D, N, H};
  p.has_b = ctx.has_input(3);
  if (p.has_b) KILN_RETURN_IF_ERROR(expect_shape(3, "B", {D, 2 * G * H}));
  p.has_lens = ctx.has_input(4);
  if (p.has_lens) {
    const TensorInfo& li = ctx.input(4);
    if (li.dtype != DType::kInt32 && li.dtype != DType::kInt64)
      return ctx.invalid("input sequence_lens must be int32, got ", dtype_name(li.dtype));
    p.lens_int64 = li.dtype == DType::kInt64;
    KILN_RETURN_IF_ERROR(expect_shape(4, "sequence_lens", {N}));
  }
  p.has_h0 = ctx.has_input(5);
  if (p.has_h0) KILN_RETURN_IF_ERROR(expect_shape(5, "initial_h", state));
  if (C == Cell::kLstm) {
    p.has_c0 = ctx.has_input(6);
    if (p.has_c0) KILN_RETURN_IF_ERROR(expect_shape(6, "initial_c", state));
    p.has_p = ctx.has_input(7);
    if (p.has_p) KILN_RETURN_IF_ERROR(expect_shape(7, "P", {D, 3 * H}));
  }

  const std::vector<std::string> names = ctx.attr_strings("activations");
  const std::vector<float> alphas = ctx.attr_floats("activation_alpha");
  const std::vector<float> betas = ctx.attr_floats("activation_beta");
  std::vector<std::string> defaults;
  if (C == Cell::kRnn) defaults = {"Tanh"};
  if (C == Cell::kGru) defaults = {"Sigmoid", "Tanh"};
  if (C == Cell::kLstm) defaults = {"Sigmoid", "Tanh", "Tanh"};
  std::vector<std::string> use = names.empty() ? defaults : names;
  // One set given for a bidirectional layer serves both directions (as in ONNX Runtime).
  if (use.size() == p.acts_per_dir && D == 2) {
    const std::vector<std::string> forward = use;
    use.insert(use.end(), forward.begin(), forward.end());
  }
  if (use.size() != p.acts_per_dir * static_cast<size_t>(D))
    return ctx.invalid("activations must list ", p.acts_per_dir * static_cast<size_t>(D), " functions, got ",
                       use.size());
  size_t ai = 0, bi = 0;
  for (const std::string& n : use) {
    Activation a;
    KILN_RETURN_IF_ERROR(parse_activation(ctx, n, alphas, ai, betas, bi, &a));
    p.acts.push_back(a);
  }

  p.out_y = ctx.has_output(0);
  p.out_yh = ctx.has_output(1);
  p.out_yc = C == Cell::kLstm && ctx.has_output(2);
  ctx.set_output(0, dt, p.batch_first ? Shape{N, p.seq, D, H} : Shape{p.seq, D, N, H});
  ctx.set_output(1, dt, state);
  if (C == Cell::kLstm) ctx.set_output(2, dt, state);

  KILN_ASSIGN_OR_RETURN(int64_t states, checked_num_elements(Shape{2, N, H}, dtype_size(dt)));
  ctx.request_scratch(static_cast<size_t>(states + 2 * G * H + H) * dtype_size(dt));
  if (dt == DType::kFloat64) return make_kernel([p](const KernelContext& kc) { return run_rnn<double>(p, kc); });
  return make_kernel([p](const KernelContext& kc) { return run_rnn<float>(p, kc); });
}

constexpr OpDef kRnnOps[] = {
    {"", "RNN", 1, kMaxOnnxOpset, prepare_rnn<Cell::kRnn>},
    {"", "GRU", 1, kMaxOnnxOpset, prepare_rnn<Cell::kGru>},
    {"", "LSTM", 1, kMaxOnnxOpset, prepare_rnn<Cell::kLstm>},
};

}  // namespace

std::span<const OpDef> rnn_ops() { return kRnnOps; }

}  // namespace kiln::nn::ops
