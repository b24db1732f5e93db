#include "kiln/nn/ops/conv_geometry.h"

namespace kiln::nn::ops {

Status read_geometry(PrepareContext& ctx, Geometry* g) {
  std::vector<int64_t> k = ctx.attr_ints("kernel_shape"), s = ctx.attr_ints("strides", {1, 1}),
                       d = ctx.attr_ints("dilations", {1, 1}), p = ctx.attr_ints("pads", {0, 0, 0, 0});
  if (k.size() != 2 || s.size() != 2 || d.size() != 2 || p.size() != 4)
    return ctx.invalid("needs 2-D kernel_shape, strides, dilations and 4 pads");
  for (int64_t v : k)
    if (v < 1) return ctx.invalid("kernel_shape must be positive");
  for (int64_t v : s)
    if (v < 1) return ctx.invalid("strides must be positive");
  for (int64_t v : d)
    if (v < 1) return ctx.invalid("dilations must be positive");
  for (int64_t v : p)
    if (v < 0) return ctx.invalid("pads must be non-negative");
  *g = Geometry{k[0], k[1], s[0], s[1], d[0], d[1], p[0], p[1], p[2], p[3]};
  return Status::ok();
}

}  // namespace kiln::nn::ops
