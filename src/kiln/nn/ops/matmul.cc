// Matrix products: MatMul (numpy semantics), Gemm, Einsum (general contraction) and Det.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

using MatmulTypes = TypeList<float, double, int32_t, int64_t, uint32_t, uint64_t>;

// A float attribute (alpha, beta) as T; integer types truncate, and values they cannot hold become 0.
template <typename T>
T attr_as(float v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (!(std::fabs(v) < 9.0e18f)) return T(0);
    return static_cast<T>(static_cast<int64_t>(v));
  }
}

// Integer arithmetic wraps (in an unsigned type at least as wide as int) instead of overflowing
// into undefined behaviour; floats are unchanged.
template <typename T>
T mul(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using W = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
    return static_cast<T>(static_cast<W>(a) * static_cast<W>(b));
  } else {
    return a * b;
  }
}
template <typename T>
T add(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using W = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
    return static_cast<T>(static_cast<W>(a) + static_cast<W>(b));
  } else {
    return a + b;
  }
}

// numpy.matmul broadcasting of two operands, resolved at compile time: 1-D promotion, batch
// broadcast, and the element offset of each batch's matrices.
struct MatmulPlan {
  Shape out;
  int64_t m = 0, k = 0, n = 0;
  std::vector<int64_t> a_off, b_off;  // per output batch, in elements
};

Result<MatmulPlan> plan_matmul(const PrepareContext& ctx, const Shape& a_in, const Shape& b_in) {
  if (a_in.empty() || b_in.empty())
    return ctx.invalid("inputs must have rank >= 1, got ", shape_to_string(a_in), " and ", shape_to_string(b_in));
  Shape a = a_in, b = b_in;
  if (a.size() == 1) a.insert(a.begin(), 1);
  if (b.size() == 1) b.push_back(1);
  MatmulPlan p;
  p.m = a[a.size() - 2];
  p.k = a[a.size() - 1];
  p.n = b[b.size() - 1];
  if (b[b.size() - 2] != p.k)
    return ctx.invalid("inner dimensions differ: A ", shape_to_string(a_in), " and B ", shape_to_string(b_in));
  Shape ab(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  KILN_ASSIGN_OR_RETURN(Shape batch, broadcast_shapes(ctx, ab, bb));
  KILN_RETURN_IF_ERROR(check_rank(ctx, batch.size() + 2));
  p.out = batch;
  if (a_in.size() > 1) p.out.push_back(p.m);
  if (b_in.size() > 1) p.out.push_back(p.n);
  // Batch offsets are only needed when there is something to write.
  KILN_ASSIGN_OR_RETURN(int64_t total, checked_num_elements(p.out));
  if (total == 0) return p;
  std::vector<int64_t> sa = broadcast_strides(ab, batch), sb = broadcast_strides(bb, batch), so = strides_of(batch);
  const int64_t nb = num_elements(batch);
  p.a_off.resize(static_cast<size_t>(nb));
  p.b_off.resize(static_cast<size_t>(nb));
  const int64_t a_mat = p.m * p.k, b_mat = p.k * p.n;
  for_each_strided<3>(batch, {sa.data(), sb.data(), so.data()}, [&](int64_t ia, int64_t ib, int64_t io) {
    p.a_off[static_cast<size_t>(io)] = ia * a_mat;
    p.b_off[static_cast<size_t>(io)] = ib * b_mat;
  });
  return p;
}

// y[m, n] = sum_k a[m * sam + k * sak] * b[k * sbk + n * sbn], row-major y.
template <typename T>
void gemm_strided(const T* a, int64_t sam, int64_t sak, const T* b, int64_t sbk, int64_t sbn, T* y, int64_t m,
                  int64_t k, int64_t n) {
  if (sak == 1 && sbk == 1) {
    // B transposed (a Linear layer's weight): rows of A and B are both contiguous, so each
    // output is a dot product.
    for (int64_t i = 0; i < m; ++i) {
      const T* arow = a + i * sam;
      for (int64_t j = 0; j < n; ++j) {
        const T* bcol = b + j * sbn;
        T acc = T(0);
        for (int64_t p = 0; p < k; ++p) acc = add(acc, mul(arow[p], bcol[p]));
        y[i * n + j] = acc;
      }
    }
    return;
  }
  for (int64_t i = 0; i < m; ++i) {
    T* row = y + i * n;
    for (int64_t j = 0; j < n; ++j) row[j] = T(0);
    for (int64_t p = 0; p < k; ++p) {
      const T av = a[i * sam + p * sak];
      const T* brow = b + p * sbk;
      for (int64_t j = 0; j < n; ++j) row[j] = add(row[j], mul(av, brow[j * sbn]));
    }
  }
}

Result<KernelPtr> prepare_matmul(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& a = ctx.input(0);
  const TensorInfo& b = ctx.input(1);
  if (a.dtype != b.dtype)
    return ctx.invalid("inputs have different dtypes ", dtype_name(a.dtype), " and ", dtype_name(b.dtype));
  KILN_ASSIGN_OR_RETURN(MatmulPlan p, plan_matmul(ctx, a.shape, b.shape));
  ctx.set_output(0, a.dtype, p.out);
  KernelPtr k;
  bool ok = visit_dtype<MatmulTypes>(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([p](const KernelContext& kc) {
      const T* a = kc.in(0).as<const T>();
      const T* b = kc.in(1).as<const T>();
      T* y = kc.out(0).as<T>();
      const int64_t mn = p.m * p.n;
      for (size_t i = 0; i < p.a_off.size(); ++i)
        gemm_strided<T>(a + p.a_off[i], p.k, 1, b + p.b_off[i], p.n, 1, y + static_cast<int64_t>(i) * mn, p.m, p.k,
                        p.n);
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return k;
}

Result<KernelPtr> prepare_gemm(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& a = ctx.input(0);
  const TensorInfo& b = ctx.input(1);
  if (a.dtype != b.dtype)
    return ctx.invalid("inputs have different dtypes ", dtype_name(a.dtype), " and ", dtype_name(b.dtype));
  if (a.rank() != 2) return ctx.invalid("input A must have rank 2, got ", shape_to_string(a.shape));
  if (b.rank() != 2) return ctx.invalid("input B must have rank 2, got ", shape_to_string(b.shape));
  const bool ta = ctx.attr_int("transA", 0) != 0, tb = ctx.attr_int("transB", 0) != 0;
  const float alpha = ctx.attr_float("alpha", 1.0f), beta = ctx.attr_float("beta", 1.0f);
  const int64_t m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1];
  const int64_t kb = tb ? b.shape[1] : b.shape[0], n = tb ? b.shape[0] : b.shape[1];
  if (k != kb)
    return ctx.invalid("inner dimensions differ: A ", shape_to_string(a.shape), (ta ? " (transposed)" : ""), " and B ",
                       shape_to_string(b.shape), (tb ? " (transposed)" : ""));
  // C broadcasts unidirectionally to [M, N]; before opset 7 only with broadcast=1.
  const bool has_c = ctx.has_input(2) && beta != 0.0f;
  int64_t scm = 0, scn = 0;
  if (ctx.has_input(2)) {
    const TensorInfo& c = ctx.input(2);
    if (c.dtype != a.dtype)
      return ctx.invalid("input C has dtype ", dtype_name(c.dtype), ", expected ", dtype_name(a.dtype));
    const Shape full{m, n};
    if (ctx.opset() < 7 && ctx.attr_int("broadcast", 0) == 0 && c.shape != full)
      return ctx.invalid("input C has shape ", shape_to_string(c.shape), " but broadcast=0 requires ",
                         shape_to_string(full));
    if (c.rank() > 2) return ctx.invalid("input C must have rank <= 2, got ", shape_to_string(c.shape));
    Shape c2 = c.shape;
    while (c2.size() < 2) c2.insert(c2.begin(), 1);
    if ((c2[0] != 1 && c2[0] != m) || (c2[1] != 1 && c2[1] != n))
      return ctx.invalid("input C of shape ", shape_to_string(c.shape), " does not broadcast to ",
                         shape_to_string(full));
    scm = c2[0] == 1 ? 0 : c2[1];
    scn = c2[1] == 1 ? 0 : 1;
  }
  ctx.set_output(0, a.dtype, {m, n});
  const int64_t sam = ta ? 1 : k, sak = ta ? m : 1;
  const int64_t sbk = tb ? 1 : n, sbn = tb ? k : 1;
  KernelPtr kern;
  bool ok = visit_dtype<MatmulTypes>(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kern = make_kernel([=](const KernelContext& kc) {
      T* y = kc.out(0).as<T>();
      gemm_strided<T>(kc.in(0).as<const T>(), sam, sak, kc.in(1).as<const T>(), sbk, sbn, y, m, k, n);
      const T al = attr_as<T>(alpha), be = attr_as<T>(beta);
      const T* c = has_c ? kc.in(2).as<const T>() : nullptr;
      for (int64_t i = 0; i < m; ++i) {
        T* row = y + i * n;
        if (alpha != 1.0f)
          for (int64_t j = 0; j < n; ++j) row[j] = mul(al, row[j]);
        if (c) {
          const T* crow = c + i * scm;
          for (int64_t j = 0; j < n; ++j) row[j] = add(row[j], mul(be, crow[j * scn]));
        }
      }
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return kern;
}

// ---- Einsum ----

constexpr int kNumLetters = 52;

int letter_id(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
  return -1;
}

// One operand's subscripts: letter ids, with -1 marking where the ellipsis stands.
struct Term {
  std::vector<int> labels;
  bool ellipsis = false;
};

Result<Term> parse_term(const PrepareContext& ctx, const std::string& s) {
  Term t;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 3, "...") == 0) {
      if (t.ellipsis) return ctx.invalid("term '", s, "' has more than one ellipsis");
      t.ellipsis = true;
      t.labels.push_back(-1);
      i += 3;
      continue;
    }
    int id = letter_id(s[i]);
    if (id < 0) return ctx.invalid("invalid character '", s[i], "' in equation term '", s, "'");
    t.labels.push_back(id);
    ++i;
  }
  return t;
}

// The contraction, flattened: every distinct index (letters and ellipsis dimensions) with its
// size, and the stride of each operand along it (0 where an operand does not carry it).
// Output indices come first, in output order; the summed indices follow.
struct EinsumPlan {
  std::vector<int64_t> out_sizes, red_sizes;
  std::vector<int64_t> out_strides, red_strides;  // [index][operand], operand = input number
  std::vector<int64_t> inner_strides;             // per operand, along the innermost summed index
  size_t num_operands = 0;
  int64_t total_out = 0;   // output elements
  bool empty_sum = false;  // a summed index has size 0: every output is 0
};

Result<KernelPtr> prepare_einsum(PrepareContext& ctx) {
  std::string eq;
  for (char c : ctx.attr_string("equation", "")) {
    if (c != ' ' && c != '\t' && c != '\n') eq += c;
  }
  if (eq.empty()) return ctx.invalid("attribute 'equation' is required");
  const size_t num_in = ctx.num_inputs();
  if (num_in == 0) return ctx.invalid("needs at least one input");
  for (size_t i = 0; i < num_in; ++i) {
    KILN_RETURN_IF_ERROR(ctx.require_input(i));
    if (ctx.input(i).dtype != ctx.input(0).dtype) return ctx.invalid("inputs have different dtypes");
    KILN_RETURN_IF_ERROR(check_rank(ctx, ctx.input(i).rank()));
  }
  size_t arrow = eq.find("->");
  std::string lhs = eq.substr(0, arrow);
  std::vector<Term> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    KILN_ASSIGN_OR_RETURN(Term t,
                          parse_term(ctx, lhs.substr(start, comma == std::string::npos ? comma : comma - start)));
    terms.push_back(std::move(t));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != num_in)
    return ctx.invalid("equation '", eq, "' has ", terms.size(), " input terms but the node has ", num_in, " inputs");

  // Ellipsis dimensions broadcast across operands, aligned to the right.
  size_t ell_rank = 0;
  for (size_t i = 0; i < num_in; ++i) {
    size_t letters = terms[i].labels.size() - (terms[i].ellipsis ? 1 : 0);
    size_t rank = ctx.input(i).rank();
    if (rank < letters || (!terms[i].ellipsis && rank != letters))
      return ctx.invalid("term ", i, " of '", eq, "' has ", letters, " subscripts but input ", i, " has shape ",
                         shape_to_string(ctx.input(i).shape));
    if (terms[i].ellipsis) ell_rank = std::max(ell_rank, rank - letters);
  }
  // Index ids: 0..51 letters, 52.. ellipsis dimensions.
  const size_t num_ids = kNumLetters + ell_rank;
  std::vector<int64_t> size(num_ids, -1);
  std::vector<int> count(num_ids, 0);
  // axis_ids[i][d]: the index id of axis d of input i.
  std::vector<std::vector<int>> axis_ids(num_in);
  for (size_t i = 0; i < num_in; ++i) {
    const Shape& s = ctx.input(i).shape;
    size_t letters = terms[i].labels.size() - (terms[i].ellipsis ? 1 : 0);
    size_t own_ell = s.size() - letters;
    for (int l : terms[i].labels) {
      if (l >= 0) {
        axis_ids[i].push_back(l);
        continue;
      }
      for (size_t e = 0; e < own_ell; ++e)
        axis_ids[i].push_back(static_cast<int>(kNumLetters + ell_rank - own_ell + e));
    }
    for (size_t d = 0; d < s.size(); ++d) {
      int id = axis_ids[i][d];
      ++count[id];
      int64_t& sz = size[id];
      if (sz == -1 || sz == 1) sz = s[d];
      else if (s[d] != sz && s[d] != 1)
        return ctx.invalid("subscript dimensions do not match: size ", s[d], " against ", sz, " in input ", i,
                           " of shape ", shape_to_string(s));
    }
  }
  for (size_t e = 0; e < ell_rank; ++e)
    if (size[kNumLetters + e] == -1) size[kNumLetters + e] = 1;

  std::vector<int> out_ids;
  if (arrow != std::string::npos) {
    KILN_ASSIGN_OR_RETURN(Term t, parse_term(ctx, eq.substr(arrow + 2)));
    std::vector<bool> seen(kNumLetters, false);
    for (int l : t.labels) {
      if (l < 0) {
        for (size_t e = 0; e < ell_rank; ++e) out_ids.push_back(static_cast<int>(kNumLetters + e));
        continue;
      }
      if (seen[l]) return ctx.invalid("output subscript '", eq.substr(arrow + 2), "' repeats a letter");
      seen[l] = true;
      if (count[l] == 0) return ctx.invalid("output subscript letter does not appear in the inputs of '", eq, "'");
      out_ids.push_back(l);
    }
    if (!t.ellipsis && ell_rank > 0)
      return ctx.invalid("the inputs of '", eq, "' have ellipsis dimensions but the output has no '...'");
  } else {
    for (size_t e = 0; e < ell_rank; ++e) out_ids.push_back(static_cast<int>(kNumLetters + e));
    for (int l = 0; l < kNumLetters; ++l)
      if (count[l] == 1) out_ids.push_back(l);
  }

  EinsumPlan p;
  p.num_operands = num_in;
  std::vector<bool> is_out(num_ids, false);
  for (int id : out_ids) is_out[id] = true;
  auto strides_for = [&](int id, std::vector<int64_t>& dst) {
    for (size_t i = 0; i < num_in; ++i) {
      const Shape& s = ctx.input(i).shape;
      std::vector<int64_t> own = strides_of(s);
      int64_t st = 0;
      for (size_t d = 0; d < s.size(); ++d)
        if (axis_ids[i][d] == id && s[d] != 1) st += own[d];
      dst.push_back(st);
    }
  };
  Shape out_shape;
  for (int id : out_ids) {
    out_shape.push_back(size[id]);
    p.out_sizes.push_back(size[id]);
    strides_for(id, p.out_strides);
  }
  for (size_t id = 0; id < num_ids; ++id) {
    if (is_out[id] || count[id] == 0) continue;
    p.red_sizes.push_back(size[id]);
    strides_for(static_cast<int>(id), p.red_strides);
  }
  KILN_RETURN_IF_ERROR(check_rank(ctx, out_shape.size()));
  KILN_ASSIGN_OR_RETURN(p.total_out, checked_num_elements(out_shape));
  p.empty_sum = std::find(p.red_sizes.begin(), p.red_sizes.end(), 0) != p.red_sizes.end();
  ctx.set_output(0, ctx.input(0).dtype, out_shape);
  // Run-time odometers: an index per dimension, and a base and a running offset per operand.
  ctx.request_scratch(sizeof(int64_t) * (p.out_sizes.size() + p.red_sizes.size() + 2 * num_in) +
                      sizeof(void*) * num_in);
  const size_t nred = p.red_sizes.size();
  for (size_t o = 0; o < num_in; ++o) p.inner_strides.push_back(nred ? p.red_strides[(nred - 1) * num_in + o] : 0);

  KernelPtr k;
  bool ok = visit_dtype<NumericTypes>(ctx.input(0).dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = std::conditional_t<std::is_floating_point_v<T>, double, T>;
    k = make_kernel([p](const KernelContext& kc) {
      const size_t nop = p.num_operands, nout = p.out_sizes.size(), nred = p.red_sizes.size();
      T* y = kc.out(0).as<T>();
      const int64_t total_out = p.total_out;
      if (total_out == 0) return Status::ok();
      int64_t* out_idx = static_cast<int64_t*>(kc.scratch);
      int64_t* red_idx = out_idx + nout;
      int64_t* base = red_idx + nred;
      int64_t* off = base + nop;
      const T** data = reinterpret_cast<const T**>(off + nop);
      for (size_t o = 0; o < nop; ++o) data[o] = kc.in(o).as<const T>();
      for (size_t d = 0; d < nout; ++d) out_idx[d] = 0;
      for (size_t o = 0; o < nop; ++o) base[o] = 0;
      const bool empty_sum = p.empty_sum;
      const int64_t inner = nred ? p.red_sizes[nred - 1] : 1;
      for (int64_t oi = 0; oi < total_out; ++oi) {
        A acc = A(0);
        if (!empty_sum) {
          for (size_t d = 0; d < nred; ++d) red_idx[d] = 0;
          for (size_t o = 0; o < nop; ++o) off[o] = base[o];
          for (;;) {
            for (int64_t r = 0; r < inner; ++r) {
              A prod = A(1);
              for (size_t o = 0; o < nop; ++o)
                prod = mul(prod, static_cast<A>(data[o][off[o] + r * p.inner_strides[o]]));
              acc = add(acc, prod);
            }
            // Advance the summed dimensions outside the innermost one.
            bool done = true;
            for (size_t d = nred ? nred - 1 : 0; d-- > 0;) {
              ++red_idx[d];
              for (size_t o = 0; o < nop; ++o) off[o] += p.red_strides[d * nop + o];
              if (red_idx[d] < p.red_sizes[d]) {
                done = false;
                break;
              }
              for (size_t o = 0; o < nop; ++o) off[o] -= p.red_strides[d * nop + o] * p.red_sizes[d];
              red_idx[d] = 0;
            }
            if (done) break;
          }
        }
        y[oi] = static_cast<T>(acc);
        for (size_t d = nout; d-- > 0;) {
          ++out_idx[d];
          for (size_t o = 0; o < nop; ++o) base[o] += p.out_strides[d * nop + o];
          if (out_idx[d] < p.out_sizes[d]) break;
          for (size_t o = 0; o < nop; ++o) base[o] -= p.out_strides[d * nop + o] * p.out_sizes[d];
          out_idx[d] = 0;
        }
      }
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return k;
}

// ---- Det ----

// Determinant by LU decomposition with partial pivoting, in double.
double determinant(double* a, int64_t n) {
  double det = 1.0;
  for (int64_t c = 0; c < n; ++c) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r * n + c]) > std::fabs(a[piv * n + c])) piv = r;
    if (a[piv * n + c] == 0.0) return 0.0;
    if (piv != c) {
      for (int64_t j = 0; j < n; ++j) std::swap(a[c * n + j], a[piv * n + j]);
      det = -det;
    }
    const double d = a[c * n + c];
    det *= d;
    for (int64_t r = c + 1; r < n; ++r) {
      const double f = a[r * n + c] / d;
      if (f == 0.0) continue;
      for (int64_t j = c + 1; j < n; ++j) a[r * n + j] -= f * a[c * n + j];
    }
  }
  return det;
}

Result<KernelPtr> prepare_det(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() < 2) return ctx.invalid("input must have rank >= 2, got ", shape_to_string(x.shape));
  const int64_t n = x.shape[x.rank() - 1];
  if (x.shape[x.rank() - 2] != n)
    return ctx.invalid("the last two dimensions must be equal (square matrices), got ", shape_to_string(x.shape));
  Shape out(x.shape.begin(), x.shape.end() - 2);
  ctx.set_output(0, x.dtype, out);
  const int64_t batch = num_elements(out);
  if (batch > 0) ctx.request_scratch(static_cast<size_t>(n * n) * sizeof(double));
  KernelPtr k;
  bool ok = visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([batch, n](const KernelContext& kc) {
      const T* x = kc.in(0).as<const T>();
      T* y = kc.out(0).as<T>();
      double* a = static_cast<double*>(kc.scratch);
      for (int64_t b = 0; b < batch; ++b) {
        const T* src = x + b * n * n;
        for (int64_t i = 0; i < n * n; ++i) a[i] = static_cast<double>(src[i]);
        y[b] = static_cast<T>(determinant(a, n));
      }
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return k;
}

constexpr OpDef kMatmulOps[] = {
    {"", "MatMul", 1, kMaxOnnxOpset, prepare_matmul},
    {"", "Gemm", 1, kMaxOnnxOpset, prepare_gemm},
    {"", "Einsum", 12, kMaxOnnxOpset, prepare_einsum},
    {"", "Det", 11, kMaxOnnxOpset, prepare_det},
};

}  // namespace

std::span<const OpDef> matmul_ops() { return kMatmulOps; }

}  // namespace kiln::nn::ops
