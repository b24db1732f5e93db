#include "kiln/nn/ops/fused_activation.h"

#include <limits>

namespace kiln::nn::ops {

Status read_fused_activation(PrepareContext& ctx, kernels::GemmParams* p) {
  using kernels::Activation;
  std::string act = ctx.attr_string("activation", "");
  std::vector<float> params = ctx.attr_floats("activation_params");
  if (act.empty() || act == "none") p->act = Activation::kNone;
  else if (act == "relu") p->act = Activation::kRelu;
  else if (act == "hardswish") p->act = Activation::kHardSwish;
  else if (act == "sigmoid") p->act = Activation::kSigmoid;
  else if (act == "silu") p->act = Activation::kSilu;
  else if (act == "clip") {
    if (params.size() != 2) return ctx.invalid("activation 'clip' needs activation_params [lo, hi]");
    p->act = Activation::kClip;
    p->lo = params[0];
    p->hi = params[1];
  } else if (act == "hardsigmoid") {
    if (params.size() != 2) return ctx.invalid("activation 'hardsigmoid' needs activation_params [alpha, beta]");
    p->act = Activation::kHardSigmoid;
    p->alpha = params[0];
    p->beta = params[1];
  } else if (act == "leakyrelu") {
    if (params.size() != 1) return ctx.invalid("activation 'leakyrelu' needs activation_params [alpha]");
    p->act = Activation::kLeakyRelu;
    p->alpha = params[0];
  } else {
    return ctx.invalid("unknown fused activation '", act, "'");
  }
  return Status::ok();
}

bool fusable_activation(const Node& n, const Value* min_value, const Value* max_value, std::string* name,
                        std::vector<float>* params) {
  if (!n.domain.empty()) return false;
  params->clear();
  if (n.op_type == "Relu") {
    *name = "relu";
    return true;
  }
  if (n.op_type == "HardSwish") {
    *name = "hardswish";
    return true;
  }
  if (n.op_type == "Sigmoid") {
    *name = "sigmoid";
    return true;
  }
  if (n.op_type == "HardSigmoid") {
    const Attribute* a = n.attribute("alpha");
    const Attribute* b = n.attribute("beta");
    *name = "hardsigmoid";
    params->push_back(a && a->kind == Attribute::Kind::kFloat ? a->f : 0.2f);
    params->push_back(b && b->kind == Attribute::Kind::kFloat ? b->f : 0.5f);
    return true;
  }
  if (n.op_type == "LeakyRelu") {
    const Attribute* a = n.attribute("alpha");
    *name = "leakyrelu";
    params->push_back(a && a->kind == Attribute::Kind::kFloat ? a->f : 0.01f);
    return true;
  }
  if (n.op_type == "Clip") {
    float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
    if (n.opset < 11) {
      if (const Attribute* a = n.attribute("min"); a && a->kind == Attribute::Kind::kFloat) lo = a->f;
      if (const Attribute* a = n.attribute("max"); a && a->kind == Attribute::Kind::kFloat) hi = a->f;
    } else {
      // Bounds are optional inputs; fusable only when they are constant float scalars.
      auto read = [](const Value* v, float* out) {
        if (!v) return true;
        if (!v->constant || v->constant->dtype() != DType::kFloat32 || v->constant->num_elements() != 1) return false;
        *out = v->constant->data<float>()[0];
        return true;
      };
      if (!read(min_value, &lo) || !read(max_value, &hi)) return false;
    }
    if (!(lo <= hi)) return false;
    *name = "clip";
    *params = {lo, hi};
    return true;
  }
  return false;
}

}  // namespace kiln::nn::ops
