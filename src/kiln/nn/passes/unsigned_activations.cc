// Stores the int8 activations between integer operators as uint8, for kernel sets that multiply
// unsigned activations (the VNNI GEMMs: vpdpbusd takes uint8 times int8).
//
// An int8 tensor q with zero point z holds the same real values as the uint8 tensor q ^ 0x80 =
// q + 128 with zero point z + 128, and every clamp and saturation bound moves by the same 128, so
// the integer operators compute bit-identical real results in either domain. Left as int8, each
// VNNI convolution first XORs its whole input into scratch (a pass over every pointwise layer's
// input; VWW: about 3 % of its time). Here a tensor flips when the operator writing it is an
// integer one (com.kiln Quantize, QConv, QDense, QPool, QAdd, QMul) and every reader is one too,
// or a Dequantize, possibly through views (Reshape, Flatten, Squeeze, Unsqueeze, layout
// Transpose) that flip with it; graph inputs and outputs keep their type. The zero points are new
// constants (others may share the old ones), and a producer's qmin/qmax move by 128.
#include <string>
#include <vector>

#include "kiln/nn/passes/attributes.h"
#include "kiln/nn/passes/passes.h"

namespace kiln::nn::passes {
namespace {

// The input slot of the zero point of the tensor a node writes, or -1.
int output_zero_point_slot(const Node& n) {
  if (is_kiln(n, "QConv") || is_kiln(n, "QDense")) return 6;
  if (is_kiln(n, "QPool")) return 4;
  if (is_kiln(n, "QAdd") || is_kiln(n, "QMul")) return 7;
  if (is_kiln(n, "Quantize")) return 2;
  return -1;
}

// The input slot of the zero point of activation input `slot`, or -1 (not an integer reader).
int input_zero_point_slot(const Node& n, int slot) {
  if ((is_kiln(n, "QConv") || is_kiln(n, "QDense") || is_kiln(n, "QPool") || is_kiln(n, "Dequantize")) && slot == 0)
    return 2;
  if (is_kiln(n, "QAdd") || is_kiln(n, "QMul")) return slot == 0 ? 2 : slot == 3 ? 5 : -1;
  return -1;
}

// Operators that only move bytes: their output flips with their input.
bool is_view(const Node& n) {
  if (n.domain.empty())
    return n.op_type == "Reshape" || n.op_type == "Flatten" || n.op_type == "Squeeze" || n.op_type == "Unsqueeze";
  return is_kiln(n, "Transpose");
}

class UnsignedActivations {
 public:
  explicit UnsignedActivations(GraphEditor& e) : e_(e), g_(e.graph()) {}

  int run() {
    int flipped = 0;
    const size_t count = g_.nodes.size();
    for (size_t i = 0; i < count; ++i) {
      if (e_.is_dead(static_cast<int>(i))) continue;
      const Node& n = g_.nodes[i];
      const int zs = output_zero_point_slot(n);
      if (zs < 0 || n.outputs.size() != 1 || n.outputs[0] < 0 || static_cast<int>(n.inputs.size()) <= zs) continue;
      int8_t z;
      if (!int8_scalar(n.inputs[static_cast<size_t>(zs)], &z)) continue;
      Family f;
      if (!collect(n.outputs[0], &f)) continue;
      flip(static_cast<int>(i), zs, f);
      ++flipped;
    }
    return flipped;
  }

 private:
  struct Reader {
    int node, zp_slot;
  };
  struct Family {
    std::vector<int> values;
    std::vector<Reader> readers;
  };

  bool int8_scalar(int v, int8_t* z) const {
    const Tensor* t = v >= 0 ? e_.constant(v) : nullptr;
    if (!t || t->dtype() != DType::kInt8 || t->num_elements() != 1) return false;
    *z = t->data<int8_t>()[0];
    return true;
  }

  // The int8 values reachable from v through views, and the integer readers of them; false if
  // any of them is a graph output or has another reader.
  bool collect(int v, Family* f) const {
    std::vector<int> stack = {v};
    while (!stack.empty()) {
      const int x = stack.back();
      stack.pop_back();
      if (e_.dtype(x) != DType::kInt8 || e_.is_graph_output(x)) return false;
      f->values.push_back(x);
      for (const Use& u : e_.uses(x)) {
        if (e_.is_dead(u.node)) continue;
        const Node& r = g_.nodes[static_cast<size_t>(u.node)];
        if (is_view(r) && u.slot == 0 && r.outputs.size() == 1 && r.outputs[0] >= 0) {
          stack.push_back(r.outputs[0]);
          continue;
        }
        const int zs = input_zero_point_slot(r, u.slot);
        int8_t z;
        if (zs < 0 || static_cast<int>(r.inputs.size()) <= zs || !int8_scalar(r.inputs[static_cast<size_t>(zs)], &z))
          return false;
        f->readers.push_back({u.node, zs});
      }
    }
    return true;
  }

  int shifted_zero_point(int v, const std::string& hint) {
    int8_t z = 0;
    int8_scalar(v, &z);
    Tensor t(DType::kUInt8, {});
    t.data<uint8_t>()[0] = static_cast<uint8_t>(z + 128);
    return e_.add_constant(hint, std::move(t));
  }

  void flip(int producer, int zp_slot, const Family& f) {
    for (int v : f.values) g_.values[static_cast<size_t>(v)].type.dtype = DType::kUInt8;
    Node& p = e_.node(producer);
    const int pz = shifted_zero_point(p.inputs[static_cast<size_t>(zp_slot)], p.name + ".y_zero_point_u8");
    e_.set_input(producer, zp_slot, pz);
    for (const char* key : {"qmin", "qmax"}) {
      Node& q = e_.node(producer);
      if (q.attributes.count(key)) q.attributes[key] = make_int(int_attr(q, key, 0) + 128);
    }
    for (const Reader& r : f.readers) {
      const Node& n = e_.node(r.node);
      const int z = shifted_zero_point(n.inputs[static_cast<size_t>(r.zp_slot)], n.name + ".x_zero_point_u8");
      e_.set_input(r.node, r.zp_slot, z);
    }
  }

  GraphEditor& e_;
  Graph& g_;
};

}  // namespace

Result<int> unsigned_activations(GraphEditor& e, bool kernels_want_unsigned) {
  if (!kernels_want_unsigned) return 0;
  return UnsignedActivations(e).run();
}

}  // namespace kiln::nn::passes
