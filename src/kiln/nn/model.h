// kiln/nn/model.h — load an ONNX model into Kiln's IR, validated.
//
// Loading parses the protobuf, checks the IR version and opset imports, converts every
// initializer (including external data files next to the model), checks that the graph is a
// well-formed DAG whose every input is defined, checks that Kiln implements every operator at
// the imported opset, and runs ONNX shape inference to annotate value types. Anything wrong
// comes back as a Status naming the node, operator, domain and opset involved. Loading never
// aborts on a bad file.
//
//   KILN_ASSIGN_OR_RETURN(kiln::nn::Model m, kiln::nn::Model::load("kws.onnx"));
//   for (int v : m.graph().inputs) std::puts(m.graph().values[v].type.to_string().c_str());
//   KILN_ASSIGN_OR_RETURN(kiln::nn::CompiledModel c, kiln::nn::compile(m, {}));   // compile.h
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/nn/ir.h"

namespace kiln::nn {

struct LoadOptions {
  // Folder that external data locations are relative to. load() sets it to the model's folder.
  std::string base_dir;
  // Also annotate intermediate values with ONNX's own shape inference (advisory: failures become
  // notes). Off by default: Debian's ONNX 1.12 implementation is not hardened against malformed
  // files (a Conv with strides=[0] divides by zero inside it), and Kiln's compile() infers every
  // shape itself, with checks, once the input shapes are bound.
  bool shape_inference = false;
  // Refuse operators Kiln does not implement at load time (kUnsupported). Tools that only
  // inspect a model may turn this off.
  bool require_supported_ops = true;
};

class Model {
 public:
  static Result<Model> load(const std::string& path, LoadOptions options = {});
  static Result<Model> load_bytes(std::string_view bytes, const LoadOptions& options = {});

  const Graph& graph() const { return graph_; }
  Graph& mutable_graph() { return graph_; }
  // Things the loader noticed but that do not stop the model from running.
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  Graph graph_;
  std::vector<std::string> notes_;
};

}  // namespace kiln::nn
