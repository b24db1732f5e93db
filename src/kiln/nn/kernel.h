// kiln/nn/kernel.h — the contract between the compiler and an operator implementation.
//
// An operator is a `prepare` function. At compile time it receives a PrepareContext with the
// node's attributes and the concrete dtype and shape of every input (plus the data of inputs
// that are constant). It validates them, sets the dtype and shape of every output, may ask
// for scratch memory, and returns a Kernel that holds everything precomputed. At run time the
// kernel receives views of its inputs and outputs (memory owned by the arena or the caller)
// and must not allocate, lock, block or log.
//
//   Result<KernelPtr> prepare_relu(PrepareContext& ctx) {
//     if (ctx.input(0).dtype != DType::kFloat32) return ctx.unsupported_dtype(0);
//     ctx.set_output(0, DType::kFloat32, ctx.input(0).shape);
//     return make_kernel([](const KernelContext& k) {
//       const float* x = k.in(0).as<const float>();
//       float* y = k.out(0).as<float>();
//       for (int64_t i = 0, n = k.in(0).num_elements(); i < n; ++i) y[i] = x[i] > 0 ? x[i] : 0;
//       return Status::ok();
//     });
//   }
//
// Errors in prepare say what the node expected ("Conv: input W must have rank 4, got [3, 3]");
// the compiler adds which node it was. Attribute getters record a type mismatch in the
// context (checked after prepare returns), so the common case reads as one line.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/core/tensor.h"
#include "kiln/nn/ir.h"

namespace kiln {
class ThreadPool;
}  // namespace kiln

namespace kiln::nn {

// What a kernel sees when it runs. All views were built at compile time; only data pointers of
// graph inputs and outputs change between runs.
struct KernelContext {
  std::span<const TensorView> inputs;   // an omitted optional input has data == nullptr
  std::span<const TensorView> outputs;
  void* scratch = nullptr;              // `scratch_bytes` requested in prepare, 64-byte aligned
  size_t scratch_bytes = 0;
  ThreadPool* pool = nullptr;           // null: run on the calling thread only

  const TensorView& in(size_t i) const { return inputs[i]; }
  const TensorView& out(size_t i) const { return outputs[i]; }
  bool has_in(size_t i) const { return i < inputs.size() && inputs[i].data != nullptr; }
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  // Runs the operator. Returns an error only for data-dependent problems that cannot be
  // known at compile time (an index out of range in a runtime tensor).
  virtual Status run(const KernelContext& ctx) const = 0;
  // Short name of the implementation, shown by `kiln info` ("reference", "f32_gemm_avx512").
  virtual const char* impl_name() const { return "reference"; }
};

using KernelPtr = std::unique_ptr<Kernel>;

template <typename F>
class LambdaKernel final : public Kernel {
 public:
  explicit LambdaKernel(F f, const char* name) : f_(std::move(f)), name_(name) {}
  Status run(const KernelContext& ctx) const override { return f_(ctx); }
  const char* impl_name() const override { return name_; }

 private:
  F f_;
  const char* name_;
};

// Wraps a callable `Status(const KernelContext&)` (usually a lambda that captures the
// precomputed parameters by value) into a Kernel.
template <typename F>
KernelPtr make_kernel(F f, const char* impl_name = "reference") {
  return std::make_unique<LambdaKernel<F>>(std::move(f), impl_name);
}

// Concrete type of one input at compile time.
struct TensorInfo {
  DType dtype = DType::kUndefined;
  Shape shape;
  int64_t num_elements() const { return kiln::num_elements(shape); }
  size_t rank() const { return shape.size(); }
};

class PrepareContext {
 public:
  PrepareContext(const Node& node, std::vector<TensorInfo> inputs,
                 std::vector<const Tensor*> constants);

  const Node& node() const { return node_; }
  const std::string& op_type() const { return node_.op_type; }
  // The version of the node's domain that the model imports.
  int opset() const { return node_.opset; }

  size_t num_inputs() const { return inputs_.size(); }
  // False for an omitted optional input (empty name in ONNX) and past the end.
  bool has_input(size_t i) const { return i < inputs_.size() && inputs_[i].dtype != DType::kUndefined; }
  const TensorInfo& input(size_t i) const { return inputs_[i]; }
  // The input's data when it is known at compile time (an initializer or a folded value).
  const Tensor* constant(size_t i) const { return i < constants_.size() ? constants_[i] : nullptr; }
  // Like constant(), but records a kNeedsValue error ("input 'shape' of Reshape must be known
  // at compile time") when the data is not known, and returns nullptr.
  const Tensor* require_constant(size_t i, const char* what);
  // Index of the input that require_constant() found missing, or -1.
  int needed_input() const { return needed_input_; }

  size_t num_outputs() const { return outputs_.size(); }
  bool has_output(size_t i) const { return i < node_.outputs.size() && node_.outputs[i] >= 0; }
  void set_output(size_t i, DType dtype, Shape shape);
  const std::vector<TensorInfo>& outputs() const { return outputs_; }

  // Declares that output 0 holds exactly the bytes of input `input` (a Reshape, a Flatten, a
  // transpose that only moves size-1 dimensions). The planner then makes the output a view of the
  // input's memory and skips the kernel; the kernel must still work (it runs when the output is a
  // graph output, which must land in the caller's buffer).
  void set_output_alias(size_t input) { output_alias_ = static_cast<int>(input); }
  int output_alias() const { return output_alias_; }

  // Scratch memory for the kernel, live only while the node runs; planned in the arena.
  void request_scratch(size_t bytes) { scratch_bytes_ = bytes; }
  // Threads the model runs on (CompileOptions::threads): kernels that split their work size
  // per-thread scratch with it.
  int threads() const { return threads_; }
  void set_threads(int threads) { threads_ = threads < 1 ? 1 : threads; }
  size_t scratch_bytes() const { return scratch_bytes_; }

  // Attributes. A present attribute of the wrong kind records an error and returns `def`.
  bool has_attr(const std::string& name) const { return node_.attribute(name) != nullptr; }
  int64_t attr_int(const std::string& name, int64_t def);
  float attr_float(const std::string& name, float def);
  std::string attr_string(const std::string& name, const std::string& def);
  std::vector<int64_t> attr_ints(const std::string& name, std::vector<int64_t> def = {});
  std::vector<float> attr_floats(const std::string& name, std::vector<float> def = {});
  std::vector<std::string> attr_strings(const std::string& name, std::vector<std::string> def = {});
  const Tensor* attr_tensor(const std::string& name);  // nullptr when absent

  // Error helpers; messages are prefixed with the op type.
  template <typename... Args> Status invalid(Args&&... a) const {
    return Status::invalid(node_.op_type, ": ", std::forward<Args>(a)...);
  }
  template <typename... Args> Status unsupported(Args&&... a) const {
    return Status::unsupported(node_.op_type, ": ", std::forward<Args>(a)...);
  }
  // "Relu: input 0 has dtype int8, which this operator does not support"
  Status unsupported_dtype(size_t input) const;
  // Checks that the input exists; error names the input position.
  Status require_input(size_t i) const;
  // Records the first error seen by an accessor; the compiler checks it after prepare.
  void record_error(Status s) {
    if (sticky_.is_ok()) sticky_ = std::move(s);
  }
  const Status& sticky_error() const { return sticky_; }

 private:
  const Attribute* typed_attr(const std::string& name, Attribute::Kind kind);

  const Node& node_;
  std::vector<TensorInfo> inputs_;
  std::vector<const Tensor*> constants_;
  std::vector<TensorInfo> outputs_;
  size_t scratch_bytes_ = 0;
  int threads_ = 1;
  int needed_input_ = -1;
  int output_alias_ = -1;
  Status sticky_;
};

using PrepareFn = Result<KernelPtr> (*)(PrepareContext& ctx);

}  // namespace kiln::nn
