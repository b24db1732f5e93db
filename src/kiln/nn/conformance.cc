#include "kiln/nn/conformance.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "kiln/nn/compile.h"
#include "kiln/nn/model.h"
#include "kiln/nn/tensor_pb.h"

namespace kiln::nn {
namespace fs = std::filesystem;

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kPass: return "pass";
    case Outcome::kFail: return "fail";
    case Outcome::kUnsupported: return "unsupported";
  }
  return "?";
}

namespace {

std::vector<std::string> numbered_files(const fs::path& dir, const std::string& prefix) {
  std::vector<std::pair<int, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string n = e.path().filename().string();
    if (n.rfind(prefix, 0) != 0 || n.size() < prefix.size() + 4 || n.substr(n.size() - 3) != ".pb") continue;
    std::string num = n.substr(prefix.size(), n.size() - prefix.size() - 3);
    if (num.empty() || !std::all_of(num.begin(), num.end(), ::isdigit)) continue;
    found.emplace_back(std::stoi(num), e.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

template <typename T>
bool close_float(T a, T b, double rtol, double atol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::fabs(static_cast<double>(a) - static_cast<double>(b)) <= atol + rtol * std::fabs(static_cast<double>(b));
}

// Empty string when equal within tolerance; otherwise a description of the first mismatch.
std::string compare(const Tensor& got, const Tensor& want, const ConformanceOptions& o) {
  if (got.dtype() != want.dtype())
    return "dtype " + dtype_name(got.dtype()) + ", expected " + dtype_name(want.dtype());
  if (got.shape() != want.shape())
    return "shape " + shape_to_string(got.shape()) + ", expected " + shape_to_string(want.shape());
  const int64_t n = want.num_elements();
  int64_t bad = 0, first = -1;
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool ok;
    switch (want.dtype()) {
      case DType::kFloat32: ok = close_float(got.data<float>()[i], want.data<float>()[i], o.rtol, o.atol); break;
      case DType::kFloat64: ok = close_float(got.data<double>()[i], want.data<double>()[i], o.rtol, o.atol); break;
      default: {
        size_t es = dtype_size(want.dtype());
        ok = std::memcmp(static_cast<const char*>(got.raw()) + i * es, static_cast<const char*>(want.raw()) + i * es, es) == 0;
      }
    }
    if (!ok) {
      if (first < 0) first = i;
      ++bad;
      double d = std::fabs(element_as_double(got.view(), i) - element_as_double(want.view(), i));
      if (!(d <= worst)) worst = d;
    }
  }
  if (!bad) return "";
  std::ostringstream os;
  os << bad << " of " << n << " values differ (first at flat index " << first << ": got "
     << element_as_double(got.view(), first) << ", expected " << element_as_double(want.view(), first)
     << "; max abs diff " << worst << ")";
  return os.str();
}

Tensor reinterpret_as(const Tensor& t, DType dtype) {
  Tensor r(dtype, t.shape());
  std::memcpy(r.raw(), t.raw(), t.byte_size());
  return r;
}

}  // namespace

Result<std::vector<std::string>> list_conformance_cases(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return Status::not_found("'", root, "' is not a folder");
  if (fs::exists(fs::path(root) / "model.onnx")) return std::vector<std::string>{root};
  std::vector<std::string> cases;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory() && fs::exists(e.path() / "model.onnx")) cases.push_back(e.path().string());
  std::sort(cases.begin(), cases.end());
  return cases;
}

CaseResult run_conformance_case(const std::string& dir, const ConformanceOptions& options) {
  CaseResult r;
  fs::path p(dir);
  while (p.has_parent_path() && p.filename().empty()) p = p.parent_path();
  r.name = p.filename().string();
  r.category = p.parent_path().filename().string();
  auto classify = [&](const Status& s, const std::string& stage) {
    r.outcome = s.code() == StatusCode::kUnsupported ? Outcome::kUnsupported : Outcome::kFail;
    r.detail = stage + ": " + s.to_string();
    return r;
  };

  Result<Model> model = Model::load((p / "model.onnx").string());
  if (!model.is_ok()) return classify(model.status(), "load");
  const Graph& g = model->graph();

  std::vector<std::string> sets;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(p, ec))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path().string());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) {
    r.outcome = Outcome::kFail;
    r.detail = "no test_data_set_* folder";
    return r;
  }
  for (const std::string& set : sets) {
    std::vector<Tensor> inputs, expected;
    for (const std::string& f : numbered_files(set, "input_")) {
      Result<Tensor> t = load_tensor_pb(f);
      if (!t.is_ok()) return classify(t.status(), "input data");
      inputs.push_back(std::move(t).value());
    }
    for (const std::string& f : numbered_files(set, "output_")) {
      Result<Tensor> t = load_tensor_pb(f);
      if (!t.is_ok()) return classify(t.status(), "expected output data");
      expected.push_back(std::move(t).value());
    }
    if (inputs.size() > g.inputs.size())
      return classify(Status::invalid("data set has ", inputs.size(), " inputs, model has ", g.inputs.size()), "inputs");

    // ONNX 1.12 stores bfloat16 test data as uint16 (numpy has no bfloat16): same bits.
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].dtype() == DType::kUInt16 && g.values[g.inputs[i]].type.dtype == DType::kBFloat16)
        inputs[i] = reinterpret_as(inputs[i], DType::kBFloat16);
    for (size_t i = 0; i < expected.size() && i < g.outputs.size(); ++i)
      if (expected[i].dtype() == DType::kUInt16 && g.values[g.outputs[i]].type.dtype == DType::kBFloat16)
        expected[i] = reinterpret_as(expected[i], DType::kBFloat16);
    std::map<std::string, const Tensor*> by_name;
    for (size_t i = 0; i < inputs.size(); ++i) by_name[g.values[g.inputs[i]].name] = &inputs[i];
    // Like the ONNX backend runner, feed the data as given even where it contradicts a declared
    // input shape (a few suite cases do).
    CompileOptions copts;
    copts.check_declared_input_shapes = false;
    copts.optimize = options.optimize;
    Result<CompiledModel> cm = compile_for_inputs(*model, by_name, copts);
    if (!cm.is_ok()) return classify(cm.status(), "compile");

    std::vector<TensorView> in_views;
    for (const TensorSpec& s : cm->inputs()) {
      auto it = by_name.find(s.name);
      if (it == by_name.end()) return classify(Status::invalid("no data for input '", s.name, "'"), "inputs");
      in_views.push_back(it->second->view());
    }
    std::vector<Tensor> outs = cm->make_outputs();
    std::vector<TensorView> out_views;
    for (const Tensor& t : outs) out_views.push_back(t.view());
    Status s = cm->run(in_views, out_views);
    if (!s.is_ok()) return classify(s, "run");
    if (expected.size() != outs.size())
      return classify(Status::invalid("model has ", outs.size(), " outputs, data set expects ", expected.size()), "outputs");
    for (size_t i = 0; i < outs.size(); ++i) {
      std::string diff = compare(outs[i], expected[i], options);
      if (!diff.empty()) {
        r.outcome = Outcome::kFail;
        r.detail = fs::path(set).filename().string() + " output " + std::to_string(i) + " ('" +
                   cm->outputs()[i].name + "'): " + diff;
        return r;
      }
    }
    ++r.data_sets;
  }
  r.outcome = Outcome::kPass;
  return r;
}

}  // namespace kiln::nn
