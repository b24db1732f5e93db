// Resize and Upsample cases the ONNX suite (which stops at opset 17) does not cover: antialias,
// axes and keep_aspect_ratio_policy (opset 18), half_pixel_symmetric (opset 19), integer inputs
// (rounded and saturated for linear, exact for nearest), nearest extrapolation in
// tf_crop_and_resize, the legacy nearest rounding of Upsample and Resize-10, and clear errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kiln/core/alloc_counter.h"
#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::make_tensor;
using testing::ModelBuilder;

// Runs one node on graph input X; the other inputs are constants ("" leaves an input out).
Result<Model> build_node(const std::string& op, const Tensor& x,
                         const std::vector<std::pair<std::string, Tensor>>& constants, const std::vector<Attr>& attrs,
                         int opset) {
  ModelBuilder mb(opset);
  mb.input("x", x.dtype(), x.shape());
  std::vector<std::string> names = {"x"};
  for (const auto& [name, value] : constants) {
    names.push_back(name);
    if (!name.empty()) mb.initializer(name, value);
  }
  mb.node(op, names, {"y"}, attrs).output("y", DType::kUndefined);
  return mb.build();
}

Result<std::vector<Tensor>> run_node(const std::string& op, const Tensor& x,
                                     const std::vector<std::pair<std::string, Tensor>>& constants,
                                     const std::vector<Attr>& attrs, int opset) {
  KILN_ASSIGN_OR_RETURN(Model m, build_node(op, x, constants, attrs, opset));
  return testing::run_once(m, {x});
}

// Runs a compiled model once to warm up, then checks that ten more runs allocate nothing.
void expect_runs_allocate_nothing(const Model& m, const std::vector<Tensor>& inputs, const std::string& what) {
  Result<CompiledModel> cm = compile(m);
  ASSERT_TRUE(cm.is_ok()) << what << ": " << cm.status().to_string();
  std::vector<Tensor> outs = cm->make_outputs();
  std::vector<TensorView> in, out;
  for (const Tensor& t : inputs) in.push_back(t.view());
  for (const Tensor& t : outs) out.push_back(t.view());
  ASSERT_TRUE(cm->run(in, out).is_ok()) << what;
  const uint64_t before = heap_allocation_count();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(cm->run(in, out).is_ok()) << what;
  EXPECT_EQ(heap_allocation_count() - before, 0u) << what;
}

Result<std::vector<Tensor>> resize_scales(const Tensor& x, std::vector<float> scales, std::vector<Attr> attrs,
                                          int opset = 13) {
  return run_node("Resize", x, {{"", Tensor()}, {"scales", make_tensor<float>({int64_t(scales.size())}, scales)}},
                  attrs, opset);
}

Result<std::vector<Tensor>> resize_sizes(const Tensor& x, std::vector<int64_t> sizes, std::vector<Attr> attrs,
                                         int opset = 13) {
  return run_node("Resize", x,
                  {{"", Tensor()}, {"", Tensor()}, {"sizes", make_tensor<int64_t>({int64_t(sizes.size())}, sizes)}},
                  attrs, opset);
}

void expect_values(const Tensor& got, const Shape& shape, const std::vector<float>& want) {
  ASSERT_EQ(got.shape(), shape);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got.data<float>()[i], want[i], 1e-4f) << "at " << i;
}

void expect_error(const Result<std::vector<Tensor>>& r, StatusCode code, const std::string& fragment) {
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), code) << r.status().to_string();
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
}

TEST(ResizeOps, AntialiasLinearHalvingIsATriangleFilter) {
  // Halving with antialias weights the four nearest inputs 1/8, 3/8, 3/8, 1/8 (edges clamped).
  Tensor x = make_tensor<float>({8}, {0, 1, 2, 3, 4, 5, 6, 7});
  auto y = resize_sizes(x, {4}, {Attr::s("mode", "linear"), Attr::i("antialias", 1)}, 18);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {4}, {0.625f, 2.5f, 4.5f, 6.375f});
  auto plain = resize_sizes(x, {4}, {Attr::s("mode", "linear")}, 18);
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  expect_values((*plain)[0], {4}, {0.5f, 2.5f, 4.5f, 6.5f});
}

TEST(ResizeOps, AxesSelectWhichDimensionsTheScalesDescribe) {
  Tensor x = make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto y = resize_scales(x, {2}, {Attr::ints("axes", {-1})}, 18);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {2, 6}, {1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6});
}

TEST(ResizeOps, KeepAspectRatioPolicies) {
  Tensor x = make_tensor<float>({1, 1, 2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  // Target 4x4: not_larger keeps scale min(2, 1) = 1, not_smaller takes max(2, 1) = 2.
  const Attr axes = Attr::ints("axes", {2, 3});
  auto small = resize_sizes(x, {4, 4}, {axes, Attr::s("keep_aspect_ratio_policy", "not_larger")}, 18);
  auto large = resize_sizes(x, {4, 4}, {axes, Attr::s("keep_aspect_ratio_policy", "not_smaller")}, 18);
  ASSERT_TRUE(small.is_ok()) << small.status().to_string();
  ASSERT_TRUE(large.is_ok()) << large.status().to_string();
  expect_values((*small)[0], {1, 1, 2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  expect_values((*large)[0], {1, 1, 4, 8}, {1, 1, 2, 2, 3, 3, 4, 4, 1, 1, 2, 2, 3, 3, 4, 4});
}

TEST(ResizeOps, HalfPixelSymmetricCentresTheRoundedOutput) {
  // in 4, scale 0.6: output 2 (of 2.4). half_pixel samples 1/3 and 2; half_pixel_symmetric shifts
  // both by 2 * (1 - 2 / 2.4) = 1/3.
  Tensor x = make_tensor<float>({4}, {0, 1, 2, 3});
  const Attr symmetric = Attr::s("coordinate_transformation_mode", "half_pixel_symmetric");
  auto sym = resize_scales(x, {0.6f}, {Attr::s("mode", "linear"), symmetric}, 19);
  auto half = resize_scales(x, {0.6f}, {Attr::s("mode", "linear")}, 19);
  ASSERT_TRUE(sym.is_ok()) << sym.status().to_string();
  ASSERT_TRUE(half.is_ok()) << half.status().to_string();
  expect_values((*sym)[0], {2}, {2.0f / 3, 7.0f / 3});
  expect_values((*half)[0], {2}, {1.0f / 3, 2});
}

TEST(ResizeOps, Uint8LinearRoundsToNearest) {
  Tensor x = make_tensor<uint8_t>({2}, {0, 255});
  auto y = resize_sizes(x, {4}, {Attr::s("mode", "linear")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  const uint8_t* d = (*y)[0].data<uint8_t>();
  EXPECT_EQ(d[0], 0);
  EXPECT_EQ(d[1], 64);   // 63.75
  EXPECT_EQ(d[2], 191);  // 191.25
  EXPECT_EQ(d[3], 255);
}

TEST(ResizeOps, Uint8CubicOvershootSaturates) {
  // Cubic interpolation of a step overshoots below 0 and above 255 next to the edge.
  Tensor x = make_tensor<uint8_t>({4}, {0, 0, 255, 255});
  auto y = resize_scales(x, {2}, {Attr::s("mode", "cubic")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  const uint8_t* d = (*y)[0].data<uint8_t>();
  EXPECT_EQ(d[2], 0);    // -26.9 before saturation
  EXPECT_EQ(d[5], 255);  // 281.9 before saturation
}

TEST(ResizeOps, NearestCopiesInt64Exactly) {
  const int64_t big = (int64_t{1} << 62) + 1;
  Tensor x = make_tensor<int64_t>({2}, {big, -3});
  auto y = resize_scales(x, {2}, {});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  const int64_t* d = (*y)[0].data<int64_t>();
  EXPECT_EQ(d[0], big);
  EXPECT_EQ(d[1], big);
  EXPECT_EQ(d[2], -3);
  EXPECT_EQ(d[3], -3);
}

TEST(ResizeOps, NearestTfCropAndResizeExtrapolates) {
  // roi [0.5, 1.5] of a length-4 axis samples 1.5, 3 and 4.5; the last lies outside.
  Tensor x = make_tensor<float>({4}, {1, 2, 3, 4});
  auto y = run_node("Resize", x,
                    {{"roi", make_tensor<float>({2}, {0.5f, 1.5f})}, {"", Tensor()},
                     {"sizes", make_tensor<int64_t>({1}, {3})}},
                    {Attr::s("coordinate_transformation_mode", "tf_crop_and_resize"),
                     Attr::f("extrapolation_value", -1)},
                    13);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {3}, {2, 4, -1});
}

TEST(ResizeOps, LegacyNearestFloorsUpAndCeilsDown) {
  // Upsample-7 (scales attribute) and Resize-10 use x / scale, floored when enlarging and
  // rounded up when shrinking.
  Tensor up = make_tensor<float>({2}, {10, 20});
  auto u = run_node("Upsample", up, {}, {Attr::floats("scales", {3})}, 7);
  ASSERT_TRUE(u.is_ok()) << u.status().to_string();
  expect_values((*u)[0], {6}, {10, 10, 10, 20, 20, 20});
  Tensor down = make_tensor<float>({5}, {10, 20, 30, 40, 50});
  auto d = run_node("Resize", down, {{"scales", make_tensor<float>({1}, {0.7f})}}, {}, 10);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  expect_values((*d)[0], {3}, {10, 30, 40});
}

TEST(ResizeOps, RunsAllocateNothing) {
  const Tensor x = make_tensor<float>({1, 2, 3, 4}, {1, 2, 3, 4, 5, 6});
  const std::pair<std::string, Tensor> none = {"", Tensor()};
  const std::pair<std::string, Tensor> scales = {"scales", make_tensor<float>({4}, {1, 1, 2, 0.5f})};
  for (const char* mode : {"nearest", "linear", "cubic"}) {
    Result<Model> m = build_node("Resize", x, {none, scales}, {Attr::s("mode", mode), Attr::i("antialias", 1)}, 18);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    expect_runs_allocate_nothing(*m, {x}, mode);
  }
  Result<Model> m = build_node("Upsample", x, {}, {Attr::floats("scales", {1, 1, 2, 2})}, 7);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  expect_runs_allocate_nothing(*m, {x}, "Upsample");
}

TEST(ResizeOps, ScalesAndSizesTogetherAreAnError) {
  Tensor x = make_tensor<float>({2}, {1, 2});
  auto y = run_node("Resize", x,
                    {{"", Tensor()},
                     {"scales", make_tensor<float>({1}, {2})},
                     {"sizes", make_tensor<int64_t>({1}, {4})}},
                    {}, 13);
  expect_error(y, StatusCode::kInvalidArgument, "exactly one of scales and sizes");
}

TEST(ResizeOps, WrongNumberOfScalesIsAnError) {
  expect_error(resize_scales(make_tensor<float>({1, 2}, {1, 2}), {2}, {}), StatusCode::kInvalidArgument,
               "scales must have 2 values");
}

TEST(ResizeOps, NonPositiveScaleIsAnError) {
  expect_error(resize_scales(make_tensor<float>({2}, {1, 2}), {-2}, {}), StatusCode::kInvalidArgument,
               "must be positive");
}

TEST(ResizeOps, UnknownModeIsAnError) {
  expect_error(resize_scales(make_tensor<float>({2}, {1, 2}), {2}, {Attr::s("mode", "area")}),
               StatusCode::kInvalidArgument, "mode must be");
}

TEST(ResizeOps, TfCropAndResizeNeedsRoi) {
  expect_error(resize_sizes(make_tensor<float>({2}, {1, 2}), {3},
                            {Attr::s("coordinate_transformation_mode", "tf_crop_and_resize")}),
               StatusCode::kInvalidArgument, "input 1 is required");
}

}  // namespace
}  // namespace kiln::nn
