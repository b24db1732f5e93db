// kiln/nn/optimize.h — graph passes that run between analysis and planning.
//
// compile() first analyses the model (binds shapes, folds constants, removes Identity and
// Dropout), lowers it to a graph whose every value has a concrete type, runs these passes on it,
// and compiles the result. Passes rewrite the graph into faster equivalent forms: BatchNorm
// folded into the preceding Conv/Gemm, activations and residual adds fused into the producer,
// convolutions in channels-last layout with transposes only at the region's edges, MatMul+Add
// as one Gemm, decomposed LayerNorm/GELU patterns as single nodes.
//
//   Graph g = ...;  // lowered
//   KILN_RETURN_IF_ERROR(optimize_graph(g, options, &notes));
#pragma once

#include <string>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/nn/ir.h"

namespace kiln::nn {

struct CompileOptions;

// Rewrites `g` in place. `notes` receives one line per pass that changed something.
Status optimize_graph(Graph& g, const CompileOptions& options, std::vector<std::string>* notes);

}  // namespace kiln::nn
