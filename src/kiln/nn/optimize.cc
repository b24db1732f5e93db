#include "kiln/nn/optimize.h"

#include "kiln/nn/compile.h"

namespace kiln::nn {

Status optimize_graph(Graph& g, const CompileOptions& options, std::vector<std::string>* notes) {
  (void)g;
  (void)options;
  (void)notes;
  return Status::ok();
}

}  // namespace kiln::nn
