// kiln/nn/kernels/internal/qgemm_rows.h — QGemmConfig::gemm_rows from a unit's own tile
// functions: the row blocks of one panel in a loop inside the unit instead of one call through the
// driver per tile (VWW's pointwise layers: 8 to 256 rows, K = 8 to 256, where that call was
// several % of the layer). Header-only, no intrinsics: each ISA unit instantiates it with its own.
//
//   const QGemmConfig kMine = {..., gemm_any, igemm_any, gemm_rows<kMR, gemm_tile<kMR>, gemm_any>,
//                              gemm_rows<kMR, igemm_tile<kMR>, igemm_any, true>};
#pragma once

#include <cstdint>

#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels {

// Full tiles of MR rows through `tile`, the last partial one through `any` (which reads t.mr).
// kIndirect: t.a_ptrs (ks * MR pointers per row block) instead of t.a.
template <int MR, void (*tile)(const QTile&), void (*any)(const QTile&), bool kIndirect = false>
void gemm_rows(const QTile& first, int64_t rows) {
  QTile t = first;
  const int64_t c_step = MR * t.ldc * (t.params->out == QOutput::kInt8 ? 1 : 4);
  int64_t i = 0;
  t.mr = MR;
  for (; i + MR <= rows; i += MR) {
    tile(t);
    if constexpr (kIndirect) t.a_ptrs += t.ks * MR;
    else t.a += MR * t.lda;
    t.c = static_cast<uint8_t*>(t.c) + c_step;
  }
  if (i < rows) {
    t.mr = static_cast<int>(rows - i);
    any(t);
  }
}

}  // namespace kiln::nn::kernels
