#include "kiln/nn/optimize.h"

#include "kiln/nn/compile.h"
#include "kiln/nn/graph_edit.h"
#include "kiln/nn/kernels/qgemm.h"
#include "kiln/nn/passes/passes.h"

namespace kiln::nn {

Status optimize_graph(Graph& g, const CompileOptions& options, std::vector<std::string>* notes) {
  (void)options;
  struct Pass {
    const char* name;
    Result<int> (*run)(GraphEditor&);
  };
  static constexpr Pass kPasses[] = {
      {"fuse_patterns", passes::fuse_patterns},
      {"fold_batchnorm", passes::fold_batchnorm},
      {"dense_layers", passes::dense_layers},
      {"layout_nhwc", passes::layout_nhwc},
      {"fuse_epilogues", passes::fuse_epilogues},
      {"fuse_channel_scale", passes::fuse_channel_scale},
      {"fast_ops", passes::fast_ops},
      {"fold_layout_pairs", passes::fold_layout_pairs},
  };
  {
    GraphEditor e(g);
    Result<int> r = passes::quantized(e, notes);
    if (!r.is_ok()) return r.status().with_context("pass quantized");
    KILN_RETURN_IF_ERROR(e.finish());
    if (*r > 0 && notes) notes->push_back("quantized: " + std::to_string(*r) + " rewrites");
  }
  {
    GraphEditor e(g);
    Result<int> r = passes::unsigned_activations(e, kernels::qkernels().gemm->a_unsigned);
    if (!r.is_ok()) return r.status().with_context("pass unsigned_activations");
    KILN_RETURN_IF_ERROR(e.finish());
    if (*r > 0 && notes) notes->push_back("unsigned_activations: " + std::to_string(*r) + " tensors");
  }
  {
    GraphEditor e(g);
    Result<int> r = passes::fuse_input_quantize(e);
    if (!r.is_ok()) return r.status().with_context("pass fuse_input_quantize");
    KILN_RETURN_IF_ERROR(e.finish());
    if (*r > 0 && notes) notes->push_back("fuse_input_quantize: " + std::to_string(*r) + " rewrites");
  }
  for (const Pass& p : kPasses) {
    GraphEditor e(g);
    Result<int> r = p.run(e);
    if (!r.is_ok()) return r.status().with_context(std::string("pass ") + p.name);
    KILN_RETURN_IF_ERROR(e.finish());
    if (*r > 0 && notes) notes->push_back(std::string(p.name) + ": " + std::to_string(*r) + " rewrites");
  }
  return Status::ok();
}

}  // namespace kiln::nn
