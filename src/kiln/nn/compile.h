// kiln/nn/compile.h — turn a loaded model into something that runs with no allocation.
//
// compile() binds every input shape (dynamic dimensions get the sizes the caller gives),
// prepares a kernel for every node, evaluates at compile time everything that does not
// depend on runtime inputs (constant folding: the Shape -> Gather -> Concat -> Reshape chains
// exporters emit disappear), drops Identity and Dropout, and plans all intermediate tensors
// into one arena whose buffers are reused when lifetimes do not overlap.
// CompiledModel::run() then only executes the plan: no heap allocation, no lock, no syscall.
//
//   kiln::nn::CompileOptions opts;
//   opts.input_shapes["input"] = {1, 3, 224, 224};       // binds a dynamic batch dimension
//   KILN_ASSIGN_OR_RETURN(kiln::nn::CompiledModel cm, kiln::nn::compile(model, opts));
//   std::vector<kiln::Tensor> outs = cm.make_outputs();  // allocate once
//   kiln::Tensor x(kiln::DType::kFloat32, {1, 3, 224, 224});
//   kiln::TensorView in[] = {x.view()};
//   kiln::TensorView out[] = {outs[0].view()};
//   KILN_RETURN_IF_ERROR(cm.run(in, out));               // call as often as needed
//
// A CompiledModel runs one inference at a time (run() is not re-entrant); compile the model
// twice for two concurrent callers. Moving a CompiledModel is cheap and keeps it valid.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/core/tensor.h"
#include "kiln/nn/kernel.h"
#include "kiln/nn/model.h"

namespace kiln::nn {

struct CompileOptions {
  // Shapes for graph inputs, by name. Unlisted inputs use the model's declared shape.
  std::map<std::string, Shape> input_shapes;
  // Size given to symbolic dimensions (like "batch") that input_shapes does not bind.
  // -1: such a dimension is an error that names it.
  int64_t default_dim = -1;
  // Inputs whose values are fixed at compile time. They become constants and are no longer
  // inputs of the compiled model. Needed when an input determines a shape (the `shape` of a
  // Reshape, the `repeats` of a Tile): compile() then fails with kNeedsValue naming it.
  std::map<std::string, Tensor> input_values;
  bool fold_constants = true;
  // Run the graph optimisation passes (optimize.h) and use the fast kernels they select. Off:
  // every node runs its reference kernel (the oracle the fast paths are tested against).
  bool optimize = true;
  int threads = 1;
  // Check given input shapes against the shapes the model declares. The ONNX backend test runner
  // does not (some suite cases feed data that contradicts their model's declaration), so the
  // conformance runner turns this off; users should leave it on.
  bool check_declared_input_shapes = true;
  // Largest single tensor (bytes) compile() accepts; larger shapes are an error naming them.
  uint64_t max_tensor_bytes = uint64_t{1} << 36;
  // When compile() fails with kNeedsValue and this is set, it receives the names of the graph
  // inputs whose values would let compilation proceed (bind them in input_values and retry).
  std::vector<std::string>* needs_values = nullptr;
};

// Name, dtype and concrete shape of a compiled model's input or output.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kUndefined;
  Shape shape;
};

// One executed node, for reports (`kiln info`).
struct StepInfo {
  std::string node_name;
  std::string op_type;
  std::string impl;       // kernel implementation name
  int64_t macs = 0;       // multiply-accumulates for Conv/Gemm/MatMul/RNN-family nodes
};

class CompiledModel {
 public:
  CompiledModel();
  ~CompiledModel();
  CompiledModel(CompiledModel&&) noexcept;
  CompiledModel& operator=(CompiledModel&&) noexcept;

  const std::vector<TensorSpec>& inputs() const;
  const std::vector<TensorSpec>& outputs() const;
  // Bytes of the arena holding every intermediate tensor and kernel scratch buffer.
  size_t arena_bytes() const;
  // Bytes of constant data (weights and folded values) the plan reads.
  size_t constant_bytes() const;
  const std::vector<StepInfo>& steps() const;
  // Nodes evaluated at compile time and nodes removed (Identity, Dropout).
  int folded_nodes() const;
  int removed_nodes() const;
  // Steps that became views of their input (no-copy Reshape, Flatten, ...) and do not run.
  int view_nodes() const;
  // Things compile() noticed that do not stop the model from running.
  const std::vector<std::string>& notes() const;

  // Runs the model. `inputs` and `outputs` follow the order of inputs() and outputs(); each
  // view must have that entry's dtype and shape. Allocation-free; not re-entrant.
  Status run(std::span<const TensorView> inputs, std::span<const TensorView> outputs);

  // Like run(), and adds each step's CPU time on the calling thread (microseconds) to
  // `step_us[i]` (resized to steps().size() here). For `kiln bench --profile`: CPU time is not
  // inflated by other processes on a busy machine; with threads > 1 it leaves out the workers.
  Status run_profiled(std::span<const TensorView> inputs, std::span<const TensorView> outputs,
                      std::vector<double>& step_us);

  // Allocates one tensor per output, with the right dtype and shape (setup-time helper).
  std::vector<Tensor> make_outputs() const;

  struct Impl;

 private:
  Status run_impl(std::span<const TensorView> inputs, std::span<const TensorView> outputs, double* step_us);
  std::unique_ptr<Impl> impl_;
  friend Result<CompiledModel> compile(const Model& model, const CompileOptions& options);
};

Result<CompiledModel> compile(const Model& model, const CompileOptions& options = {});

// Compiles for the shapes of the given input tensors (by input name). When an input's value
// decides a shape (kNeedsValue), binds that input's value and tries again, as `kiln run` does.
// Inputs bound this way are not inputs of the compiled model.
Result<CompiledModel> compile_for_inputs(const Model& model, const std::map<std::string, const Tensor*>& inputs,
                                         CompileOptions options = {});

// The graph inputs that `value` depends on (used to say which input to bind after kNeedsValue).
std::vector<std::string> graph_inputs_feeding(const Graph& g, int value);

}  // namespace kiln::nn
