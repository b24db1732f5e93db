#include "kiln/nn/quantize/quantizer.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "kiln/core/npy.h"
#include "kiln/nn/compile.h"
#include "kiln/nn/internal/onnx_tensor.h"
#include "kiln/nn/model.h"

namespace kiln::nn::quantize {

// ---- calibration data ----

namespace {

// The samples of one input from the .npy files of `dir` (see load_calibration).
Result<std::vector<Tensor>> load_input_samples(const std::string& dir, const std::string& input_name,
                                               const ValueType& input) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::invalid("calibration folder '", dir, "' does not exist");
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".npy") files.push_back(e.path().string());
  if (ec) return Status::invalid("cannot read calibration folder '", dir, "': ", ec.message());
  std::sort(files.begin(), files.end());
  if (files.empty()) return Status::invalid("calibration folder '", dir, "' holds no .npy files");
  if (!input.has_shape) return Status::invalid("input '", input_name, "' has no declared shape to check samples against");
  const std::vector<Dim>& d = input.dims;
  auto fits = [&](const Shape& s, size_t from) {  // s matches d[from..]
    if (s.size() + from != d.size()) return false;
    for (size_t i = 0; i < s.size(); ++i)
      if (d[i + from].known() && d[i + from].value != s[i]) return false;
    return true;
  };
  std::vector<Tensor> out;
  for (const std::string& f : files) {
    Result<Tensor> t = load_npy(f);
    if (!t.is_ok()) return t.status();
    if (t->dtype() != DType::kFloat32)
      return Status::invalid(f, ": dtype ", dtype_name(t->dtype()), ", input '", input_name, "' needs float32");
    const Shape s = t->shape();
    const bool batch1 = !d.empty() && (!d[0].known() || d[0].value == 1);
    const bool symbolic_batch = !d.empty() && !d[0].known();
    if (fits(s, 0) && !symbolic_batch) {
      out.push_back(*t);
    } else if (fits(s, 0) && !s.empty()) {  // a symbolic batch: each leading row is one sample
      Shape one = s;
      one[0] = 1;
      const int64_t per = num_elements(one);
      for (int64_t i = 0; i < s[0]; ++i) {
        Tensor x(DType::kFloat32, one);
        std::copy(t->data<float>() + i * per, t->data<float>() + (i + 1) * per, x.data<float>());
        out.push_back(std::move(x));
      }
    } else if (batch1 && fits(s, 1)) {  // one sample without its batch dimension
      Shape with = s;
      with.insert(with.begin(), 1);
      Tensor x(DType::kFloat32, with);
      std::copy(t->data<float>(), t->data<float>() + t->num_elements(), x.data<float>());
      out.push_back(std::move(x));
    } else if (!s.empty() && fits(Shape(s.begin() + 1, s.end()), 1) && batch1) {  // stacked [N, ...sample]
      Shape one = s;
      one[0] = 1;
      const int64_t per = num_elements(one);
      for (int64_t i = 0; i < s[0]; ++i) {
        Tensor x(DType::kFloat32, one);
        std::copy(t->data<float>() + i * per, t->data<float>() + (i + 1) * per, x.data<float>());
        out.push_back(std::move(x));
      }
    } else if (s.size() == d.size() + 1 && fits(Shape(s.begin() + 1, s.end()), 0)) {  // stacked full samples
      Shape one(s.begin() + 1, s.end());
      const int64_t per = num_elements(one);
      for (int64_t i = 0; i < s[0]; ++i) {
        Tensor x(DType::kFloat32, one);
        std::copy(t->data<float>() + i * per, t->data<float>() + (i + 1) * per, x.data<float>());
        out.push_back(std::move(x));
      }
    } else {
      return Status::invalid(f, ": shape ", shape_to_string(s), " does not fit input '", input_name, "' ",
                             input.to_string(), " (one sample, the sample without its batch dimension, or samples "
                             "stacked along a first dimension)");
    }
  }
  if (out.empty()) return Status::invalid("calibration folder '", dir, "' holds no samples");
  return out;
}

}  // namespace

std::string calibration_folder_name(const std::string& input_name) {
  std::string s = input_name;
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  return s;
}

Result<std::vector<Sample>> load_calibration(const std::string& dir, const std::vector<ModelInput>& inputs) {
  if (inputs.empty()) return Status::invalid("the model has no runtime input to calibrate");
  std::vector<Sample> samples;
  if (inputs.size() == 1) {
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> one, load_input_samples(dir, inputs[0].name, inputs[0].type));
    for (Tensor& t : one) samples.push_back({std::move(t)});
    return samples;
  }
  const auto folder = [&](size_t k) {
    return (std::filesystem::path(dir) / calibration_folder_name(inputs[k].name)).string();
  };
  for (size_t k = 0; k < inputs.size(); ++k) {
    const std::string sub = folder(k);
    std::error_code ec;
    if (!std::filesystem::is_directory(sub, ec))
      return Status::invalid("the model has ", inputs.size(), " inputs: calibration folder '", dir,
                             "' needs one folder per input, and '", sub, "' (input '", inputs[k].name,
                             "') does not exist");
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> mine, load_input_samples(sub, inputs[k].name, inputs[k].type));
    if (k == 0) samples.resize(mine.size());
    if (mine.size() != samples.size())
      return Status::invalid("calibration folder '", sub, "' holds ", mine.size(), " samples of input '",
                             inputs[k].name, "', '", folder(0), "' ", samples.size(), " of input '", inputs[0].name,
                             "': every input needs the same count");
    for (size_t i = 0; i < mine.size(); ++i) samples[i].push_back(std::move(mine[i]));
  }
  return samples;
}

namespace {

// ---- protobuf helpers ----

onnx::TensorProto to_proto(const std::string& name, const Tensor& t) {
  onnx::TensorProto p;
  p.set_name(name);
  for (int64_t d : t.shape()) p.add_dims(d);
  int32_t code = onnx::TensorProto::FLOAT;
  if (t.dtype() == DType::kInt8) code = onnx::TensorProto::INT8;
  else if (t.dtype() == DType::kUInt8) code = onnx::TensorProto::UINT8;
  else if (t.dtype() == DType::kInt16) code = onnx::TensorProto::INT16;
  else if (t.dtype() == DType::kInt32) code = onnx::TensorProto::INT32;
  else if (t.dtype() == DType::kInt64) code = onnx::TensorProto::INT64;
  p.set_data_type(code);
  p.set_raw_data(std::string(static_cast<const char*>(t.raw()), static_cast<size_t>(t.byte_size())));
  return p;
}

const onnx::AttributeProto* find_attr(const onnx::NodeProto& n, const char* name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}
int64_t attr_i(const onnx::NodeProto& n, const char* name, int64_t def) {
  const onnx::AttributeProto* a = find_attr(n, name);
  return a && a->type() == onnx::AttributeProto::INT ? a->i() : def;
}
float attr_f(const onnx::NodeProto& n, const char* name, float def) {
  const onnx::AttributeProto* a = find_attr(n, name);
  return a && a->type() == onnx::AttributeProto::FLOAT ? a->f() : def;
}

// A layer with constant weights: Conv, Gemm, MatMul.
struct Layer {
  int node = -1;
  std::string x, w, bias, out;  // out: the node's output, or that of a Relu/Clip after it
  int64_t axis = 0;             // output-channel axis of w
  std::string op_type, name;
  // Weights the model already stores as int8 behind a DequantizeLinear (tf2onnx writes some
  // that way): kept as they are; `w_scale` names their scale initializer.
  bool prequantized = false;
  std::string w_scale;
};

// Asymmetric int16 parameters for a range, by the rules of asymmetric_int8 (calibration.h):
// scale = (hi - lo) / 65535 over the range widened to contain 0, zero point in [-32768, 32767].
void asymmetric_int16(const Range& r, float* scale, int16_t* zero_point) {
  const float lo = std::min(r.lo, 0.f), hi = std::max(r.hi, 0.f);
  float s = (hi - lo) / 65535.f;
  if (!(s > 0.f) || !std::isfinite(s)) s = 1.f;
  *scale = s;
  const float z = std::nearbyint(-32768.f - lo / s);
  *zero_point = static_cast<int16_t>(std::min(32767.f, std::max(-32768.f, z)));
}

// One tensor's quantisation, from its range: int8, or int16 (a model input with input_bits 16).
struct ActParam {
  float scale = 1.f;
  int32_t zero_point = 0;
  int bits = 8;
  float qmin = -128.f, qmax = 127.f;
  ActParam(const Range& r, int b) : bits(b) {
    if (bits == 16) {
      int16_t z = 0;
      asymmetric_int16(r, &scale, &z);
      zero_point = z;
      qmin = -32768.f;
      qmax = 32767.f;
    } else {
      int8_t z = 0;
      asymmetric_int8(r, &scale, &z);
      zero_point = z;
    }
  }
};

// The default ONNX domain's opset from which QuantizeLinear / DequantizeLinear take int16.
constexpr int kInt16Opset = 21;

double sqnr_db(double signal, double noise) {
  if (noise <= 0) return 200.0;
  if (signal <= 0) return -200.0;
  return 10.0 * std::log10(signal / noise);
}

class Quantizer {
 public:
  Quantizer(const QuantizeOptions& o, std::string base_dir) : opts_(o), base_dir_(std::move(base_dir)) {}

  Result<std::string> run(std::string_view bytes, const std::vector<Sample>& samples, QuantizeReport* report) {
    if (!mp_.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
      return Status::invalid("the model is not a valid ONNX protobuf");
    if (samples.empty()) return Status::invalid("no calibration samples");
    if (opts_.input_bits != 8 && opts_.input_bits != 16)
      return Status::invalid("input bits must be 8 or 16, got ", opts_.input_bits);
    onnx::GraphProto& g = *mp_.mutable_graph();
    for (const auto& op : mp_.opset_import())
      if (op.domain().empty() || op.domain() == "ai.onnx") opset_ = static_cast<int>(op.version());
    if (opset_ < 10) return Status::invalid("QDQ models need opset >= 10; the model imports opset ", opset_);
    // With 16-bit inputs the model is raised to opset 21, where per-axis parameters exist.
    if (opts_.per_channel && opset_ < 13 && opts_.input_bits == 8)
      return Status::invalid("per-channel weights need opset >= 13 (the model imports ", opset_,
                             "); omit --per-channel or re-export the model");
    index_graph(g);
    if (opts_.input_bits == 16 && opset_ < kInt16Opset) {
      KILN_RETURN_IF_ERROR(raise_opset());
      index_graph(g);  // nodes were inserted
    }
    for (const Sample& x : samples)
      if (x.size() != runtime_inputs_.size())
        return Status::invalid("a calibration sample has ", x.size(), " tensors; the model has ", runtime_inputs_.size(),
                               " inputs");
    find_layers(g);
    keep_float_tails(g);
    if (opts_.input_bits == 16) find_wide_inputs(g);
    if (layers_.empty())
      return Status::invalid("the model has no quantisable node (Conv, Gemm or MatMul with constant weights",
                             opts_.exclude.empty() ? "" : ", not excluded", ")");
    KILN_RETURN_IF_ERROR(calibrate(samples));
    if (opts_.input_search)
      for (size_t k = 0; k < runtime_inputs_.size(); ++k) KILN_RETURN_IF_ERROR(search_input_range(g, samples, k));
    KILN_RETURN_IF_ERROR(rewrite(g));
    std::string out;
    if (!mp_.SerializeToString(&out)) return Status::internal("serialising the quantised model failed");
    KILN_RETURN_IF_ERROR(measure(bytes, out, samples, report));
    report->samples = static_cast<int>(samples.size());
    for (const Layer& l : layers_) report->quantized_nodes.push_back(l.name);
    report->notes.insert(report->notes.end(), notes_.begin(), notes_.end());
    return out;
  }

 private:
  void index_graph(const onnx::GraphProto& g) {
    init_.clear();
    runtime_inputs_.clear();
    graph_outputs_.clear();
    consumers_.clear();
    producer_.clear();
    names_.clear();
    for (int i = 0; i < g.initializer_size(); ++i) init_[g.initializer(i).name()] = i;
    for (const auto& in : g.input())
      if (!init_.count(in.name())) runtime_inputs_.push_back(in.name());
    for (const auto& o : g.output()) graph_outputs_.insert(o.name());
    for (int i = 0; i < g.node_size(); ++i) {
      const auto& n = g.node(i);
      for (int s = 0; s < n.input_size(); ++s)
        if (!n.input(s).empty()) consumers_[n.input(s)].push_back(i);
      for (const auto& o : n.output()) {
        names_.insert(o);
        producer_[o] = i;
      }
      names_.insert(n.name());
    }
    for (const auto& [k, v] : init_) names_.insert(k);
    for (const auto& k : runtime_inputs_) names_.insert(k);
  }

  // ---- opset 21, for int16 inputs ----

  // Raises the default domain to opset 21 (and the IR version to 10, its release), restating the
  // nodes whose signature changed since the model's opset (upgrade_graph).
  Status raise_opset() {
    int restated = 0;
    KILN_RETURN_IF_ERROR(upgrade_graph(*mp_.mutable_graph(), &restated));
    for (auto& op : *mp_.mutable_opset_import())
      if (op.domain().empty() || op.domain() == "ai.onnx") op.set_version(kInt16Opset);
    if (mp_.ir_version() < 10) mp_.set_ir_version(10);
    notes_.push_back("opset " + std::to_string(opset_) + " raised to " + std::to_string(kInt16Opset) +
                     ": int16 QuantizeLinear / DequantizeLinear need it" +
                     (restated ? "; " + std::to_string(restated) + " nodes restated for it" : ""));
    opset_ = kInt16Opset;
    return Status::ok();
  }

  static bool take_attr(onnx::NodeProto& n, const char* name, onnx::AttributeProto* out) {
    auto* attrs = n.mutable_attribute();
    for (int i = 0; i < attrs->size(); ++i)
      if (attrs->Get(i).name() == name) {
        *out = attrs->Get(i);
        attrs->DeleteSubrange(i, 1);
        return true;
      }
    return false;
  }
  static void set_attr_int(onnx::NodeProto& n, const char* name, int64_t v) {
    onnx::AttributeProto* a = nullptr;
    for (auto& x : *n.mutable_attribute())
      if (x.name() == name) a = &x;
    if (!a) a = n.add_attribute();
    a->Clear();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void set_input_at(onnx::NodeProto& n, int slot, const std::string& v) {
    while (n.input_size() <= slot) n.add_input("");
    n.set_input(slot, v);
  }
  // A constant input of a restated node, stored in the graph that holds the node.
  std::string add_const(onnx::GraphProto& g, const std::string& hint, const Tensor& t) {
    const std::string name = unique(hint);
    *g.add_initializer() = to_proto(name, t);
    return name;
  }
  static Tensor float_scalar(float v) {
    Tensor t(DType::kFloat32, {});
    t.data<float>()[0] = v;
    return t;
  }
  static Tensor int64_list(const onnx::AttributeProto& a) {
    Tensor t(DType::kInt64, {static_cast<int64_t>(a.ints_size())});
    for (int i = 0; i < a.ints_size(); ++i) t.data<int64_t>()[i] = a.ints(i);
    return t;
  }

  // Restates the default-domain nodes of `g` (and of its subgraphs) for opset 21: list attributes
  // that became inputs (Squeeze / Unsqueeze / Split / ReduceSum at 13, the other reductions at 18),
  // Clip's bounds and Pad's pads (11), Dropout's ratio (12), Split's num_outputs (18), Scatter as
  // ScatterElements, GridSample's mode names (20), and a Softmax / LogSoftmax / Hardmax before 13
  // (which normalised over every axis from `axis` on): its axis made explicit when it is the
  // last, else Flatten -> the operator on the last axis -> Reshape back. Nodes whose meaning
  // cannot be restated are an error.
  Status upgrade_graph(onnx::GraphProto& g, int* restated) {
    const int from = opset_;
    std::map<std::string, int> rank;  // declared ranks
    auto note_rank = [&](const onnx::ValueInfoProto& v) {
      if (v.type().has_tensor_type() && v.type().tensor_type().has_shape())
        rank[v.name()] = v.type().tensor_type().shape().dim_size();
    };
    for (const auto& v : g.input()) note_rank(v);
    for (const auto& v : g.output()) note_rank(v);
    for (const auto& v : g.value_info()) note_rank(v);
    static const std::map<std::string, int> kAxesInput = {
        {"Squeeze", 13},    {"Unsqueeze", 13},    {"ReduceSum", 13},       {"ReduceMax", 18},
        {"ReduceMin", 18},  {"ReduceMean", 18},   {"ReduceProd", 18},      {"ReduceL1", 18},
        {"ReduceL2", 18},   {"ReduceLogSum", 18}, {"ReduceLogSumExp", 18}, {"ReduceSumSquare", 18}};
    google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
    for (int i = 0; i < g.node_size(); ++i) {
      onnx::NodeProto n = g.node(i);
      for (auto& a : *n.mutable_attribute()) {
        if (a.has_g()) KILN_RETURN_IF_ERROR(upgrade_graph(*a.mutable_g(), restated));
        for (auto& sub : *a.mutable_graphs()) KILN_RETURN_IF_ERROR(upgrade_graph(sub, restated));
      }
      if (!n.domain().empty() && n.domain() != "ai.onnx") {
        *nodes.Add() = std::move(n);
        continue;
      }
      const std::string op = n.op_type(), hint = n.name().empty() ? op : n.name();
      auto cannot = [&](const std::string& why) {
        return Status::invalid("int16 inputs need opset ", kInt16Opset, " and the model imports opset ", from, ": ", op,
                               " '", n.name(), "' cannot be restated there (", why,
                               "); re-export the model at a newer opset or keep 8-bit inputs");
      };
      bool changed = false;
      onnx::AttributeProto a;
      auto ax = kAxesInput.find(op);
      if (ax != kAxesInput.end() && from < ax->second && take_attr(n, "axes", &a)) {
        set_input_at(n, 1, add_const(g, hint + "_axes", int64_list(a)));
        changed = true;
      } else if (op == "Split") {
        if (from < 13 && take_attr(n, "split", &a)) {
          set_input_at(n, 1, add_const(g, hint + "_split", int64_list(a)));
          changed = true;
        }
        if (from < 18 && (n.input_size() < 2 || n.input(1).empty())) {  // equal parts: say how many
          set_attr_int(n, "num_outputs", n.output_size());
          changed = true;
        }
      } else if (op == "Clip" && from < 11) {  // (float bounds: Kiln's float type)
        if ((changed = take_attr(n, "min", &a))) set_input_at(n, 1, add_const(g, hint + "_min", float_scalar(a.f())));
        if (take_attr(n, "max", &a)) {
          set_input_at(n, 2, add_const(g, hint + "_max", float_scalar(a.f())));
          changed = true;
        }
      } else if (op == "Pad" && from < 11) {
        if ((changed = take_attr(n, "pads", &a))) set_input_at(n, 1, add_const(g, hint + "_pads", int64_list(a)));
        if (take_attr(n, "value", &a)) {
          set_input_at(n, 2, add_const(g, hint + "_value", float_scalar(a.f())));
          changed = true;
        }
      } else if (op == "Dropout" && from < 12) {
        if ((changed = take_attr(n, "ratio", &a)))
          set_input_at(n, 1, add_const(g, hint + "_ratio", float_scalar(a.f())));
      } else if (op == "Scatter") {
        n.set_op_type("ScatterElements");
        changed = true;
      } else if (op == "GridSample" && from < 20) {
        for (auto& x : *n.mutable_attribute())
          if (x.name() == "mode" && (x.s() == "bilinear" || x.s() == "bicubic")) {
            x.set_s(x.s() == "bilinear" ? "linear" : "cubic");
            changed = true;
          }
      } else if ((op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") && from < 13 && n.input_size() > 0 &&
                 n.output_size() == 1) {
        const int64_t axis = attr_i(n, "axis", 1);
        auto r = rank.find(n.input(0));
        if (r == rank.end()) r = rank.find(n.output(0));
        if (axis == -1 || (r != rank.end() && (axis < 0 ? axis + r->second : axis) == r->second - 1)) {
          set_attr_int(n, "axis", axis);  // the last axis: the same at 13
        } else {
          const std::string x = n.input(0), y = n.output(0);
          const std::string flat = unique(hint + "_2d"), flat_y = unique(hint + "_2d_output"),
                            shape = unique(hint + "_input_shape");
          onnx::NodeProto f = qdq_node("Flatten", hint + "_Flatten", {x}, flat);
          set_attr_int(f, "axis", axis);
          *nodes.Add() = f;
          *nodes.Add() = qdq_node("Shape", hint + "_Shape", {x}, shape);
          n.set_input(0, flat);
          n.set_output(0, flat_y);
          set_attr_int(n, "axis", -1);
          *nodes.Add() = n;
          *nodes.Add() = qdq_node("Reshape", hint + "_Reshape", {flat_y, shape}, y);
          ++*restated;
          continue;
        }
        changed = true;
      } else if (op == "Upsample") {
        return cannot("Upsample was replaced by Resize at opset 10");
      } else if (op == "Resize" && from < 11) {
        return cannot("Resize-10's coordinate and nearest rounding rules differ from every later mode");
      } else if (op == "BatchNormalization" && from < 14) {
        for (int o = 1; o < n.output_size(); ++o)
          if (!n.output(o).empty()) return cannot("its training outputs changed at opset 14");
      } else if (op == "GroupNormalization" && from < 21) {
        return cannot("its scale and bias were per group before opset 21 and are per channel since");
      } else if (op == "DFT" && from < 20) {
        return cannot("its axis became an input with another default at opset 20");
      }
      *restated += changed;
      *nodes.Add() = std::move(n);
    }
    g.mutable_node()->Swap(&nodes);
    return Status::ok();
  }

  bool is_const(const std::string& v) const { return init_.count(v) > 0; }
  bool excluded(const onnx::NodeProto& n) const {
    return std::find(opts_.exclude.begin(), opts_.exclude.end(), n.name()) != opts_.exclude.end();
  }
  std::string unique(const std::string& hint) {
    std::string s = hint;
    for (int k = 1; names_.count(s); ++k) s = hint + "_" + std::to_string(k);
    names_.insert(s);
    return s;
  }
  Result<Tensor> initializer(const std::string& name) {
    return internal::tensor_from_proto(mp_.graph().initializer(init_.at(name)), base_dir_);
  }

  void find_layers(const onnx::GraphProto& g) {
    for (int i = 0; i < g.node_size(); ++i) {
      const auto& n = g.node(i);
      if (!n.domain().empty() && n.domain() != "ai.onnx") continue;
      if (excluded(n)) {
        if (n.op_type() == "Conv" || n.op_type() == "Gemm" || n.op_type() == "MatMul")
          notes_.push_back(n.op_type() + " '" + n.name() + "' excluded: left in float");
        continue;
      }
      const std::string& op = n.op_type();
      if (op == "Conv" || op == "Gemm" || op == "MatMul") {
        if (n.input_size() < 2 || is_const(n.input(0)) || n.output_size() < 1) continue;
        Layer l;
        l.node = i;
        l.op_type = op;
        l.name = n.name().empty() ? op + "_" + std::to_string(i) : n.name();
        l.x = n.input(0);
        l.w = n.input(1);
        std::string w_init = l.w;
        if (!is_const(l.w)) {
          auto pi = producer_.find(l.w);
          if (pi == producer_.end()) continue;
          const auto& dq = g.node(pi->second);
          if (dq.op_type() != "DequantizeLinear" || dq.input_size() < 2 || !is_const(dq.input(0)) ||
              !is_const(dq.input(1)))
            continue;
          if (dq.input_size() > 2 && !dq.input(2).empty()) {  // the zero point must be 0 (symmetric)
            if (!is_const(dq.input(2))) continue;
            Result<Tensor> z = internal::tensor_from_proto(g.initializer(init_.at(dq.input(2))), base_dir_);
            if (!z.is_ok()) continue;
            bool all_zero = true;
            for (int64_t k = 0; k < z->num_elements(); ++k)
              all_zero &= z->dtype() == DType::kInt8 && z->data<int8_t>()[k] == 0;
            if (!all_zero) continue;
          }
          w_init = dq.input(0);
          l.prequantized = true;
          l.w_scale = dq.input(1);
        }
        const auto& wp = g.initializer(init_.at(w_init));
        if (wp.data_type() != (l.prequantized ? onnx::TensorProto::INT8 : onnx::TensorProto::FLOAT)) continue;
        if (op == "Conv") {
          if (wp.dims_size() != 4) continue;  // the integer kernels are 2-D
          l.axis = 0;
        } else if (op == "Gemm") {
          if (wp.dims_size() != 2 || attr_i(n, "transA", 0) != 0 || attr_f(n, "alpha", 1.f) != 1.f ||
              attr_f(n, "beta", 1.f) != 1.f)
            continue;
          l.axis = attr_i(n, "transB", 0) ? 0 : 1;
        } else {
          if (wp.dims_size() != 2) continue;
          l.axis = 1;
        }
        const int64_t channels = wp.dims(static_cast<int>(l.axis));
        if (l.prequantized) {
          const auto& sp = g.initializer(init_.at(l.w_scale));
          int64_t count = 1;
          for (int64_t d : sp.dims()) count *= d;
          const auto& dq = g.node(producer_.at(l.w));
          int64_t dq_axis = attr_i(dq, "axis", 1);
          if (dq_axis < 0) dq_axis += wp.dims_size();
          if (sp.data_type() != onnx::TensorProto::FLOAT || (count != 1 && (count != channels || dq_axis != l.axis)))
            continue;
        }
        if (n.input_size() > 2 && !n.input(2).empty()) {
          const std::string& b = n.input(2);
          if (is_const(b)) {
            const auto& bp = g.initializer(init_.at(b));
            int64_t count = 1;
            for (int64_t d : bp.dims()) count *= d;
            if (bp.data_type() == onnx::TensorProto::FLOAT && count == channels) l.bias = b;
          }
        }
        l.out = after_activation(g, n.output(0));
        add_input(l.x);
        add_activation(l.out);
        layers_.push_back(l);
      } else if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool") {
        if (n.input_size() < 1 || n.output_size() < 1 || is_const(n.input(0))) continue;
        if (n.output_size() > 1 && !n.output(1).empty()) continue;
        add_input(n.input(0));
        add_activation(n.output(0));
      } else if (op == "Add") {
        if (n.input_size() != 2 || is_const(n.input(0)) || is_const(n.input(1))) continue;
        add_input(n.input(0));
        add_input(n.input(1));
        add_activation(after_activation(g, n.output(0)));
      }
    }
  }
  // `v`, or the output of the Relu / Clip that is its only reader: quantising there lets the
  // activation fuse into the integer operator as an output clamp.
  std::string after_activation(const onnx::GraphProto& g, const std::string& v) const {
    auto c = consumers_.find(v);
    if (c == consumers_.end() || c->second.size() != 1 || graph_outputs_.count(v)) return v;
    const auto& next = g.node(c->second[0]);
    if ((next.op_type() == "Relu" || next.op_type() == "Clip") && next.input(0) == v && next.output_size() == 1)
      return next.output(0);
    return v;
  }

  void add_activation(const std::string& v) {
    if (!stats_.count(v)) {
      order_.push_back(v);
      stats_[v] = TensorStats();
    }
  }
  // A tensor that a quantised node reads.
  void add_input(const std::string& v) {
    add_activation(v);
    read_quantized_.insert(v);
  }

  // An output from which no quantised node's input can be reached (the logits before a Softmax,
  // a graph output) stays float: its integer operator writes float straight from the int32 sums
  // (fast_qconv.h, fast_qdense.h), where a QuantizeLinear would only round it to 256 levels and
  // a DequantizeLinear turn it back. On the MLPerf KWS model the int8 logits tied the top two
  // classes on 4 of 400 spoken clips.
  void keep_float_tails(const onnx::GraphProto& g) {
    std::set<std::string> reach(read_quantized_.begin(), read_quantized_.end());
    std::vector<std::string> todo(read_quantized_.begin(), read_quantized_.end());
    while (!todo.empty()) {  // upstream of a quantised read, through any node
      const std::string v = todo.back();
      todo.pop_back();
      auto p = producer_.find(v);
      if (p == producer_.end()) continue;
      for (const auto& in : g.node(p->second).input())
        if (!in.empty() && !is_const(in) && reach.insert(in).second) todo.push_back(in);
    }
    std::vector<std::string> kept;
    for (const std::string& v : order_)
      if (reach.count(v)) kept.push_back(v);
      else stats_.erase(v);
    order_.swap(kept);
  }

  // Compiles a model that also outputs `extra` tensors.
  Result<CompiledModel> compile_with_outputs(const onnx::ModelProto& base, const std::vector<std::string>& extra,
                                             const Sample& sample, std::map<std::string, int>* index) {
    onnx::ModelProto m = base;
    std::set<std::string> have;
    for (const auto& o : m.graph().output()) have.insert(o.name());
    for (const std::string& v : extra) {
      if (have.count(v)) continue;
      auto* o = m.mutable_graph()->add_output();
      o->set_name(v);
      o->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
      have.insert(v);
    }
    std::string bytes;
    m.SerializeToString(&bytes);
    LoadOptions lo;
    lo.base_dir = base_dir_;
    KILN_ASSIGN_OR_RETURN(Model model, Model::load_bytes(bytes, lo));
    CompileOptions co;
    for (size_t k = 0; k < runtime_inputs_.size(); ++k) co.input_shapes[runtime_inputs_[k]] = sample[k].shape();
    KILN_ASSIGN_OR_RETURN(CompiledModel cm, compile(model, co));
    index->clear();
    for (size_t i = 0; i < cm.outputs().size(); ++i) (*index)[cm.outputs()[i].name] = static_cast<int>(i);
    return cm;
  }

  // Runs one sample; its tensors are in runtime_inputs_ order, the compiled model's inputs by name.
  Status run_one(CompiledModel& cm, const Sample& x, std::vector<Tensor>& outs) const {
    std::vector<TensorView> in;
    for (const auto& info : cm.inputs()) {
      const size_t k = static_cast<size_t>(
          std::find(runtime_inputs_.begin(), runtime_inputs_.end(), info.name) - runtime_inputs_.begin());
      if (k >= x.size()) return Status::internal("compiled input '", info.name, "' is not a model input");
      if (x[k].shape() != info.shape || x[k].dtype() != info.dtype)
        return Status::invalid("calibration samples of input '", info.name, "' differ in shape: ",
                               shape_to_string(x[k].shape()), " after ", shape_to_string(info.shape));
      in.push_back(x[k].view());
    }
    std::vector<TensorView> ov;
    for (Tensor& t : outs) ov.push_back(t.view());
    return cm.run(in, ov);
  }

  Status calibrate(const std::vector<Sample>& samples) {
    std::map<std::string, int> idx;
    KILN_ASSIGN_OR_RETURN(CompiledModel cm, compile_with_outputs(mp_, order_, samples[0], &idx));
    std::vector<Tensor> outs = cm.make_outputs();
    const int passes = opts_.method == CalibrationMethod::kMinMax ? 1 : 2;
    const int total = passes * static_cast<int>(samples.size());
    int done = 0;
    for (int pass = 0; pass < passes; ++pass) {
      if (pass == 1)
        for (auto& [k, s] : stats_) s.start_histogram();
      for (const Sample& x : samples) {
        KILN_RETURN_IF_ERROR(run_one(cm, x, outs));
        report_progress("calibrating", ++done, total);
        for (const std::string& v : order_) {
          auto it = idx.find(v);
          if (it == idx.end()) continue;
          const Tensor& t = outs[static_cast<size_t>(it->second)];
          if (t.dtype() != DType::kFloat32) continue;
          if (pass == 0) stats_[v].observe_range(t.data<float>(), t.num_elements());
          else stats_[v].observe_histogram(t.data<float>(), t.num_elements());
        }
      }
    }
    for (const std::string& v : order_) {
      auto it = idx.find(v);
      if (it == idx.end() || cm.outputs()[static_cast<size_t>(it->second)].dtype != DType::kFloat32 ||
          !stats_[v].seen())
        continue;
      ranges_[v] = choose_range(stats_[v], opts_.method);
    }
    return Status::ok();
  }

  // Model input k and its layout-only descendants (Transpose, Reshape, ...): the tensors that
  // carry its values unchanged, so quantise like it.
  std::vector<std::string> input_chain(const onnx::GraphProto& g, size_t input) const {
    static const std::set<std::string> kLayout = {"Transpose", "Reshape", "Flatten",
                                                  "Squeeze",   "Unsqueeze", "Identity"};
    std::vector<std::string> chain{runtime_inputs_[input]};
    for (size_t i = 0; i < chain.size(); ++i) {
      auto c = consumers_.find(chain[i]);
      if (c == consumers_.end()) continue;
      for (int ni : c->second) {
        const auto& n = g.node(ni);
        if (kLayout.count(n.op_type()) && n.input_size() > 0 && n.input(0) == chain[i] && n.output_size() == 1)
          chain.push_back(n.output(0));
      }
    }
    return chain;
  }

  // With input_bits 16: the quantised tensors of each input's chain get int16 pairs.
  void find_wide_inputs(const onnx::GraphProto& g) {
    for (size_t k = 0; k < runtime_inputs_.size(); ++k)
      for (const std::string& v : input_chain(g, k))
        if (stats_.count(v)) {
          wide_[v] = runtime_inputs_[k];
          wide_inputs_.insert(runtime_inputs_[k]);
        }
  }

  // The range of model input k, chosen by its effect on the outputs. One scale must serve every
  // feature of the input, and features differ in range: the first of ten MFCCs spans [-73, 16]
  // where the tenth spans [-6, 3]. Clipping the wide feature's rare extremes buys the others
  // resolution, and whether that pays depends on what the model does with them, so each candidate
  // range is tried: the calibration samples (up to kSearchSamples), rounded to it as
  // QuantizeLinear -> DequantizeLinear would, run through the fp32 model, and the squared error of
  // the outputs summed against the unrounded run. From the observed range, the low end is shrunk
  // first (to 90 % ... 40 %), then the high end; the best must have 5 % less error than the
  // method's own range, or that stays. (Inner tensors keep their method's range: there, what a
  // clipped value costs depends on the other rounding too.) The tensors searched are the input and
  // its layout-only descendants (Transpose, Reshape, ...: rounding commutes with them), one range
  // for all. The model's other inputs stay unrounded meanwhile. An int16 input is rounded to 16
  // bits: its rounding is negligible, so the search then only undoes a method's clipping (entropy
  // clipped the KWS input to [-59, 16]; the search restored [-75, 16]: spoken-clip agreement
  // 98.75 -> 99.0 %); the method's range stays under minmax and percentile.
  Status search_input_range(const onnx::GraphProto& g, const std::vector<Sample>& samples, size_t input) {
    const std::vector<std::string> chain = input_chain(g, input);
    std::vector<std::string> tensors;
    Range calibrated, seen;  // the method's range and the observed one (with 0), over the chain
    for (const std::string& v : chain)
      if (ranges_.count(v)) {
        const Range r = ranges_[v], o{std::min(0.f, stats_[v].min()), std::max(0.f, stats_[v].max())};
        calibrated = tensors.empty() ? r : Range{std::min(calibrated.lo, r.lo), std::max(calibrated.hi, r.hi)};
        seen = tensors.empty() ? o : Range{std::min(seen.lo, o.lo), std::max(seen.hi, o.hi)};
        tensors.push_back(v);
      }
    if (tensors.empty() || !(seen.hi > seen.lo)) return Status::ok();
    std::map<std::string, int> idx;
    KILN_ASSIGN_OR_RETURN(CompiledModel cm, compile_with_outputs(mp_, {}, samples[0], &idx));
    const size_t n = std::min(samples.size(), kSearchSamples);
    std::vector<const Sample*> picked;  // spread over the whole set
    for (size_t i = 0; i < n; ++i) picked.push_back(&samples[i * samples.size() / n]);
    std::vector<std::vector<Tensor>> ref(n);
    for (size_t i = 0; i < n; ++i) {
      ref[i] = cm.make_outputs();
      KILN_RETURN_IF_ERROR(run_one(cm, *picked[i], ref[i]));
    }
    std::vector<Tensor> outs = cm.make_outputs();
    Sample rounded = *picked[0];
    auto error = [&](const Range& r, double* err) -> Status {
      const ActParam p(r, wide_inputs_.count(runtime_inputs_[input]) ? 16 : 8);
      const float scale = p.scale, zp = static_cast<float>(p.zero_point);
      *err = 0;
      for (size_t i = 0; i < n; ++i) {
        for (size_t k = 0; k < rounded.size(); ++k)
          if (k != input) rounded[k] = (*picked[i])[k];
        const float* x = (*picked[i])[input].data<float>();
        float* y = rounded[input].data<float>();
        for (int64_t k = 0; k < rounded[input].num_elements(); ++k) {
          const float q = std::min(p.qmax, std::max(p.qmin, std::nearbyint(x[k] / scale) + zp));
          y[k] = (q - zp) * scale;
        }
        KILN_RETURN_IF_ERROR(run_one(cm, rounded, outs));
        for (size_t o = 0; o < outs.size(); ++o) {
          if (outs[o].dtype() != DType::kFloat32) continue;
          for (int64_t k = 0; k < outs[o].num_elements(); ++k) {
            const double d = static_cast<double>(outs[o].data<float>()[k]) - ref[i][o].data<float>()[k];
            *err += d * d;
          }
        }
      }
      return Status::ok();
    };
    constexpr float kShrink[] = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f};
    constexpr int kCandidates = 2 + 2 * 6;
    const std::string stage = "input range of '" + runtime_inputs_[input] + "'";
    double base = 0, best_err = 0;
    KILN_RETURN_IF_ERROR(error(calibrated, &base));
    Range best = seen;
    KILN_RETURN_IF_ERROR(error(seen, &best_err));
    int tried = 2;
    report_progress(stage, tried, kCandidates);
    for (int end = 0; end < 2; ++end)
      for (float f : kShrink) {
        report_progress(stage, ++tried, kCandidates);
        Range r = best;
        (end == 0 ? r.lo : r.hi) = (end == 0 ? seen.lo : seen.hi) * f;
        if (end == 0 ? r.lo == 0.f : r.hi == 0.f) continue;
        double e = 0;
        KILN_RETURN_IF_ERROR(error(r, &e));
        if (e < best_err) {
          best_err = e;
          best = r;
        }
      }
    if (!(best_err < 0.95 * base)) return Status::ok();
    for (const std::string& v : tensors) ranges_[v] = best;
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "range [%.4g, %.4g] -> [%.4g, %.4g], chosen by the outputs: their error on %zu calibration "
                  "samples %.1f dB lower",
                  calibrated.lo, calibrated.hi, best.lo, best.hi, n, 10.0 * std::log10(base / std::max(best_err, 1e-300)));
    notes_.push_back("input '" + runtime_inputs_[input] + "': " + buf);
    return Status::ok();
  }
  static constexpr size_t kSearchSamples = 128;

  void report_progress(const std::string& stage, int done, int total) const {
    if (opts_.progress) opts_.progress(stage, done, total);
  }

  onnx::NodeProto qdq_node(const char* op, const std::string& name, const std::vector<std::string>& in,
                           const std::string& out, int64_t axis = -1) {
    onnx::NodeProto n;
    n.set_op_type(op);
    n.set_name(unique(name));
    for (const std::string& s : in) n.add_input(s);
    n.add_output(out);
    if (axis >= 0) {
      auto* a = n.add_attribute();
      a->set_name("axis");
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(axis);
    }
    return n;
  }
  void add_init(const std::string& name, const Tensor& t) { *mp_.mutable_graph()->add_initializer() = to_proto(name, t); }

  Status rewrite(onnx::GraphProto& g) {
    std::vector<onnx::NodeProto> head;                         // weight DequantizeLinear nodes
    std::map<std::string, std::vector<onnx::NodeProto>> after;  // tensor -> its Q/DQ pair
    std::map<std::string, std::string> dq_name;                 // activation -> its dequantised twin
    for (const std::string& v : order_) {
      auto it = ranges_.find(v);
      if (it == ranges_.end()) continue;
      const ActParam q(it->second, bits_of(v));
      Tensor s(DType::kFloat32, {}), z(q.bits == 16 ? DType::kInt16 : DType::kInt8, {});
      s.data<float>()[0] = q.scale;
      if (q.bits == 16) {
        z.data<int16_t>()[0] = static_cast<int16_t>(q.zero_point);
        char buf[200];
        std::snprintf(buf, sizeof buf, "range [%.4g, %.4g], scale %.4g, zero point %d", it->second.lo, it->second.hi,
                      q.scale, q.zero_point);
        const std::string& in = wide_.at(v);
        notes_.push_back("input '" + in + "': quantised to int16" + (v == in ? "" : " at '" + v + "'") + ", " + buf);
      } else {
        z.data<int8_t>()[0] = static_cast<int8_t>(q.zero_point);
      }
      const std::string sn = unique(v + "_scale"), zn = unique(v + "_zero_point");
      add_init(sn, s);
      add_init(zn, z);
      const std::string qn = unique(v + "_quantized"), dn = unique(v + "_dequantized");
      after[v].push_back(qdq_node("QuantizeLinear", v + "_QuantizeLinear", {v, sn, zn}, qn));
      after[v].push_back(qdq_node("DequantizeLinear", v + "_DequantizeLinear", {qn, sn, zn}, dn));
      dq_name[v] = dn;
    }
    std::set<std::string> retired_inits;
    for (Layer& l : layers_) {
      auto xr = ranges_.find(l.x);
      if (xr == ranges_.end()) {
        notes_.push_back(l.op_type + " '" + l.name + "': its input is not float32; left in float");
        continue;
      }
      const ActParam xq(xr->second, bits_of(l.x));
      onnx::NodeProto& node = *g.mutable_node(l.node);
      std::vector<float> wscale;  // per output channel
      int64_t channels = 0;
      if (l.prequantized) {
        KILN_ASSIGN_OR_RETURN(Tensor sc, initializer(l.w_scale));
        const auto& dq = g.node(producer_.at(l.w));
        const auto& wp = g.initializer(init_.at(dq.input(0)));
        channels = wp.dims(static_cast<int>(l.axis));
        for (int64_t c = 0; c < channels; ++c) wscale.push_back(sc.data<float>()[sc.num_elements() == 1 ? 0 : c]);
      } else {
        KILN_ASSIGN_OR_RETURN(Tensor w, initializer(l.w));
        channels = w.shape()[static_cast<size_t>(l.axis)];
        int64_t inner = 1;
        for (size_t d = static_cast<size_t>(l.axis) + 1; d < w.rank(); ++d) inner *= w.shape()[d];
        const int64_t groups = opts_.per_channel ? channels : 1;
        std::vector<float> amax(static_cast<size_t>(groups), 0.f);
        for (int64_t i = 0; i < w.num_elements(); ++i) {
          const int64_t c = opts_.per_channel ? (i / inner) % channels : 0;
          const float v = std::fabs(w.data<float>()[i]);
          if (std::isfinite(v)) amax[c] = std::max(amax[c], v);
        }
        Tensor ws(DType::kFloat32, opts_.per_channel ? Shape{channels} : Shape{});
        Tensor wz(DType::kInt8, opts_.per_channel ? Shape{channels} : Shape{});
        const float qmax = opts_.reduce_range ? 63.f : 127.f;  // symmetric weights
        for (int64_t c = 0; c < groups; ++c) {
          ws.data<float>()[c] = amax[c] > 0 ? amax[c] / qmax : 1.f;
          wz.data<int8_t>()[c] = 0;
        }
        Tensor wq(DType::kInt8, w.shape());
        for (int64_t i = 0; i < w.num_elements(); ++i) {
          const int64_t c = opts_.per_channel ? (i / inner) % channels : 0;
          float q = std::nearbyint(w.data<float>()[i] / ws.data<float>()[c]);
          if (std::isnan(q)) q = 0;
          wq.data<int8_t>()[i] = static_cast<int8_t>(std::min(qmax, std::max(-qmax, q)));
        }
        const std::string wqn = unique(l.w + "_quantized"), wsn = unique(l.w + "_scale");
        const std::string wzn = unique(l.w + "_zero_point");
        const std::string wdn = unique(l.w + "_dequantized");
        add_init(wqn, wq);
        add_init(wsn, ws);
        add_init(wzn, wz);
        head.push_back(qdq_node("DequantizeLinear", l.w + "_DequantizeLinear", {wqn, wsn, wzn}, wdn,
                                opts_.per_channel ? l.axis : -1));
        node.set_input(1, wdn);
        retired_inits.insert(l.w);
        for (int64_t c = 0; c < channels; ++c) wscale.push_back(ws.data<float>()[opts_.per_channel ? c : 0]);
      }
      if (!l.bias.empty()) {
        KILN_ASSIGN_OR_RETURN(Tensor b, initializer(l.bias));
        Tensor bq(DType::kInt32, {channels}), bs(DType::kFloat32, {channels}), bz(DType::kInt32, {channels});
        int clamped = 0;
        for (int64_t c = 0; c < channels; ++c) {
          const float s = xq.scale * wscale[static_cast<size_t>(c)];
          bs.data<float>()[c] = s;
          bz.data<int32_t>()[c] = 0;
          const double q = std::nearbyint(static_cast<double>(b.data<float>()[c]) / s);
          clamped += std::fabs(q) > 2147483647.0;
          bq.data<int32_t>()[c] = static_cast<int32_t>(std::min(2147483647.0, std::max(-2147483647.0, q)));
        }
        // Only with a scale far below the bias (an int16 input and a channel of tiny weights): the
        // model stays valid, that channel's bias is wrong.
        if (clamped > 0)
          notes_.push_back(l.op_type + " '" + l.name + "': the bias of " + std::to_string(clamped) + " of " +
                           std::to_string(channels) + " channels does not fit int32 at scale x_scale * w_scale and "
                           "was clamped" +
                           (xq.bits == 16 ? " (the int16 input's scale is small: try --input-bits 8)" : ""));
        const std::string bqn = unique(l.name + "_bias_quantized"), bsn = unique(l.name + "_bias_scale"),
                          bzn = unique(l.name + "_bias_zero_point"), bdn = unique(l.name + "_bias_dequantized");
        add_init(bqn, bq);
        add_init(bsn, bs);
        add_init(bzn, bz);
        head.push_back(qdq_node("DequantizeLinear", l.name + "_bias_DequantizeLinear", {bqn, bsn, bzn}, bdn, 0));
        node.set_input(2, bdn);
        retired_inits.insert(l.bias);
      }
    }
    // Consumers read the dequantised twins.
    for (int i = 0; i < g.node_size(); ++i) {
      onnx::NodeProto& n = *g.mutable_node(i);
      for (int s = 0; s < n.input_size(); ++s) {
        auto it = dq_name.find(n.input(s));
        if (it != dq_name.end()) n.set_input(s, it->second);
      }
    }
    // Drop float initializers nobody reads any more.
    std::set<std::string> read;
    for (const auto& n : g.node())
      for (const auto& in : n.input()) read.insert(in);
    for (const auto& h : head)
      for (const auto& in : h.input()) read.insert(in);
    for (const auto& [v, nodes] : after)
      for (const auto& n : nodes)
        for (const auto& in : n.input()) read.insert(in);
    google::protobuf::RepeatedPtrField<onnx::TensorProto> kept;
    for (const auto& t : g.initializer())
      if (!retired_inits.count(t.name()) || read.count(t.name()) || graph_outputs_.count(t.name())) *kept.Add() = t;
    g.mutable_initializer()->Swap(&kept);
    google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> inputs;
    for (const auto& in : g.input())
      if (!retired_inits.count(in.name()) || read.count(in.name())) *inputs.Add() = in;
    g.mutable_input()->Swap(&inputs);
    // Topological order: weight DQs, Q/DQ of the graph input, then each node followed by the Q/DQ
    // of its outputs.
    google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
    for (auto& h : head) *nodes.Add() = h;
    for (const std::string& in : runtime_inputs_)
      for (auto& q : after[in]) *nodes.Add() = q;
    for (const auto& n : g.node()) {
      *nodes.Add() = n;
      for (const auto& o : n.output()) {
        auto it = after.find(o);
        if (it != after.end())
          for (auto& q : it->second) *nodes.Add() = q;
      }
    }
    g.mutable_node()->Swap(&nodes);
    // Per-tensor QDQ works from opset 10; per-axis needs 13 and int16 21 (both checked above).
    return Status::ok();
  }
  int bits_of(const std::string& v) const { return wide_.count(v) ? 16 : 8; }

  // SQNR of every layer output and graph output: fp32 model vs the quantised model (run as Kiln
  // runs it: integer kernels through the quantized pass).
  Status measure(std::string_view fp32_bytes, const std::string& q_bytes, const std::vector<Sample>& samples,
                 QuantizeReport* report) {
    onnx::ModelProto fp, q;
    fp.ParseFromArray(fp32_bytes.data(), static_cast<int>(fp32_bytes.size()));
    q.ParseFromString(q_bytes);
    std::vector<std::string> f_names, q_names;
    std::vector<const Layer*> measured;
    std::map<std::string, std::string> dq_of;
    for (const auto& n : q.graph().node())
      if (n.op_type() == "DequantizeLinear" && n.input_size() > 0)
        for (const auto& m : q.graph().node())
          if (m.op_type() == "QuantizeLinear" && m.output_size() > 0 && m.output(0) == n.input(0) && m.input_size() > 0)
            dq_of[m.input(0)] = n.output(0);
    for (const Layer& l : layers_) {
      if (graph_outputs_.count(l.out)) continue;  // reported as an output
      auto it = dq_of.find(l.out);
      f_names.push_back(l.out);
      q_names.push_back(it == dq_of.end() ? l.out : it->second);  // a float tail keeps its name
      measured.push_back(&l);
    }
    std::map<std::string, int> fi, qi;
    KILN_ASSIGN_OR_RETURN(CompiledModel fcm, compile_with_outputs(fp, f_names, samples[0], &fi));
    KILN_ASSIGN_OR_RETURN(CompiledModel qcm, compile_with_outputs(q, q_names, samples[0], &qi));
    std::vector<Tensor> fo = fcm.make_outputs(), qo = qcm.make_outputs();
    std::vector<std::string> outs;
    for (const auto& o : fp.graph().output()) outs.push_back(o.name());
    std::vector<double> sig(measured.size() + outs.size(), 0), noise(sig.size(), 0);
    int top1_same = 0, top1_total = 0, done = 0;
    for (const Sample& x : samples) {
      KILN_RETURN_IF_ERROR(run_one(fcm, x, fo));
      KILN_RETURN_IF_ERROR(run_one(qcm, x, qo));
      report_progress("measuring", ++done, static_cast<int>(samples.size()));
      auto acc = [&](size_t slot, const Tensor& a, const Tensor& b) {
        if (a.dtype() != DType::kFloat32 || b.dtype() != DType::kFloat32 || a.num_elements() != b.num_elements()) return;
        for (int64_t k = 0; k < a.num_elements(); ++k) {
          const double u = a.data<float>()[k], v = b.data<float>()[k];
          sig[slot] += u * u;
          noise[slot] += (u - v) * (u - v);
        }
      };
      for (size_t i = 0; i < measured.size(); ++i)
        acc(i, fo[static_cast<size_t>(fi.at(f_names[i]))], qo[static_cast<size_t>(qi.at(q_names[i]))]);
      for (size_t i = 0; i < outs.size(); ++i) {
        const Tensor& a = fo[static_cast<size_t>(fi.at(outs[i]))];
        const Tensor& b = qo[static_cast<size_t>(qi.at(outs[i]))];
        acc(measured.size() + i, a, b);
        if (i == 0 && a.rank() == 2 && a.shape()[0] == 1 && a.shape()[1] > 1 && a.dtype() == DType::kFloat32 &&
            b.dtype() == DType::kFloat32 && a.shape() == b.shape()) {
          const float* pa = a.data<float>();
          const float* pb = b.data<float>();
          top1_same += std::max_element(pa, pa + a.shape()[1]) - pa == std::max_element(pb, pb + b.shape()[1]) - pb;
          ++top1_total;
        }
      }
    }
    for (size_t i = 0; i < measured.size(); ++i)
      report->layers.push_back({measured[i]->name, measured[i]->op_type, measured[i]->out, sqnr_db(sig[i], noise[i])});
    for (size_t i = 0; i < outs.size(); ++i)
      report->outputs.push_back({"(output)", "", outs[i], sqnr_db(sig[measured.size() + i], noise[measured.size() + i])});
    if (top1_total > 0) report->top1_agreement = static_cast<double>(top1_same) / top1_total;
    return Status::ok();
  }

  const QuantizeOptions& opts_;
  std::string base_dir_;
  onnx::ModelProto mp_;
  int opset_ = 0;
  std::map<std::string, int> init_;
  std::vector<std::string> runtime_inputs_;
  std::set<std::string> graph_outputs_, names_;
  std::map<std::string, std::vector<int>> consumers_;
  std::map<std::string, int> producer_;
  std::vector<Layer> layers_;
  std::vector<std::string> order_;
  std::set<std::string> read_quantized_;
  std::map<std::string, TensorStats> stats_;
  std::map<std::string, Range> ranges_;  // of the tensors that get a QDQ pair
  std::map<std::string, std::string> wide_;  // tensors quantised to int16 -> the model input they carry
  std::set<std::string> wide_inputs_;
  std::vector<std::string> notes_;
};

}  // namespace

Result<std::string> quantize_model(std::string_view model_bytes, const std::string& base_dir,
                                   const std::vector<Sample>& samples, const QuantizeOptions& options,
                                   QuantizeReport* report) {
  QuantizeReport local;
  Quantizer q(options, base_dir);
  Result<std::string> r = q.run(model_bytes, samples, report ? report : &local);
  return r;
}

}  // namespace kiln::nn::quantize
