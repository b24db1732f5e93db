// kiln/discover/space.h — what may be proposed: parameters, mixtures, linear constraints, pools.
//
// A search space is a list of parameters (continuous with optional log scale, integer,
// categorical), mixtures (continuous components that sum to a total, each within its own
// bounds, optionally with at most k non-zero components) and linear inequality constraints.
// A *point* holds one double per parameter in declaration order: the value itself for
// continuous and integer parameters, the index of the value for categorical ones.
//
// Models never see points; they see *features*: every parameter mapped to the unit cube
// (log-scaled first when asked), categoricals one-hot or by their user descriptors scaled to
// [0, 1]. `encode` does this; `dim()` is the feature count.
//
// A candidate pool (the normal case for a lab with a fixed inventory) is a CSV of allowed rows.
// It is stored as N points and an N x dim feature matrix — never as a Cartesian product.
//
//   std::vector<kiln::discover::Parameter> ps = {
//       {.name = "theta", .low = 0, .high = 200},
//       {.name = "n", .type = kiln::discover::ParamType::kInteger, .low = 6, .high = 12}};
//   KILN_ASSIGN_OR_RETURN(auto space, kiln::discover::SearchSpace::create(ps, {}, {}));
//   KILN_ASSIGN_OR_RETURN(auto design, space.sample(8, kiln::discover::Design::kSobol, /*seed=*/7));
//   Eigen::MatrixXd Z = space.encode_all(design);      // 8 x space.dim(), in [0, 1]
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/discover/csv.h"

namespace kiln::discover {

enum class ParamType { kContinuous, kInteger, kCategorical };
const char* param_type_name(ParamType t);

struct Parameter {
  std::string name;
  ParamType type = ParamType::kContinuous;
  double low = 0, high = 1;                      // continuous and integer (inclusive)
  bool log = false;                              // continuous: model log(x) (needs low > 0)
  std::vector<std::string> values;               // categorical labels
  std::vector<std::vector<double>> descriptors;  // optional, one row per value; empty = one-hot
};

// Components (continuous parameters named above) whose values sum to `total`.
struct Mixture {
  std::vector<std::string> components;
  double total = 1.0;
  int max_nonzero = 0;  // at most this many components > 0; 0 = no limit
};

// sum_i coefficients[i] * value(names[i]) <= rhs.
struct LinearConstraint {
  std::vector<std::string> names;
  std::vector<double> coefficients;
  double rhs = 0;
};

enum class Design { kSobol, kLatinHypercube, kRandom };

using Point = std::vector<double>;

class SearchSpace {
 public:
  SearchSpace() = default;
  // Validates names (unique, non-empty), bounds (finite, low <= high, low > 0 for log),
  // categoricals (>= 1 distinct value, descriptor rows of equal length), mixtures (components
  // exist, are continuous, appear in one mixture, sum of lows <= total <= sum of highs) and
  // constraints (names exist and are numeric).
  static Result<SearchSpace> create(std::vector<Parameter> params, std::vector<Mixture> mixtures,
                                    std::vector<LinearConstraint> constraints);

  int num_params() const { return static_cast<int>(params_.size()); }
  const Parameter& param(int i) const { return params_[i]; }
  const std::vector<Parameter>& params() const { return params_; }
  const std::vector<Mixture>& mixtures() const { return mixtures_; }
  const std::vector<LinearConstraint>& constraints() const { return constraints_; }
  // Parameter indices of each mixture's components, in the mixture's order.
  const std::vector<std::vector<int>>& mixture_indices() const { return mix_idx_; }
  int find(std::string_view name) const;  // -1 when absent
  int dim() const { return dim_; }
  // First feature column of parameter i (a categorical spans several).
  int feature_offset(int i) const { return offset_[i]; }
  // One lengthscale group per feature column, except that the one-hot columns of a categorical
  // parameter (without descriptors) share one: GpOptions::ls_groups.
  std::vector<int> lengthscale_groups() const;
  // The additive components of MixedGp, one per feature column: each one-hot categorical
  // parameter (without descriptors) is one, every other feature belongs to one more, numbered
  // after them. Empty when the space has no one-hot categorical parameter.
  std::vector<int> additive_components() const;
  // The feature columns of continuous and integer parameters (MixedGpOptions::warped).
  std::vector<int> numeric_features() const;
  // Tolerance on a mixture's sum: |sum - total| <= kMixtureTolerance * max(1, |total|).
  static constexpr double kMixtureTolerance = 1e-3;

  // Maps a point to features in [0, 1]^dim().
  void encode(const Point& p, double* z) const;
  Eigen::MatrixXd encode_all(const std::vector<Point>& ps) const;
  // d feature / d value for continuous parameter i (0 for others): the chain rule of optimise.
  double feature_slope(int i, double value) const;

  // Checks one point: bounds, integrality, category index, mixture sums and cardinality,
  // linear constraints. The message names the parameter (and mixture / constraint).
  Status check(const Point& p) const;
  // Parses a cell for parameter i: a number, or a categorical label (or its index).
  Result<double> parse_value(int i, std::string_view cell) const;
  std::string format_value(int i, double v) const;

  // `n` feasible points from a space-filling design (Sobol with a seeded digital shift, Latin
  // hypercube, or plain random), respecting mixtures, cardinality and linear constraints.
  // Fails when constraints reject every attempt.
  Result<std::vector<Point>> sample(int n, Design design, uint64_t seed) const;
  // Moves a nearly-feasible point onto the space: clamps to bounds, rounds integers, projects
  // each mixture onto its bounded simplex (keeping its zero pattern). Linear constraints are
  // not repaired; check() reports them.
  void repair(Point& p) const;

 private:
  std::vector<Parameter> params_;
  std::vector<Mixture> mixtures_;
  std::vector<LinearConstraint> constraints_;
  std::vector<std::vector<int>> mix_idx_;
  std::vector<std::vector<int>> con_idx_;
  std::vector<int> mixture_of_;  // per parameter: mixture index or -1
  std::vector<int> offset_;
  std::vector<std::vector<double>> desc_lo_, desc_hi_;
  int dim_ = 0;
};

// Projects x (size m) onto { lo <= x <= hi, sum x = total } by clip-and-redistribute; entries
// where active[i] is false stay 0. Returns false when the set is empty.
bool project_bounded_simplex(double* x, const double* lo, const double* hi, const bool* active,
                             int m, double total);

// A fixed inventory of allowed points.
struct Pool {
  std::vector<Point> points;
  Eigen::MatrixXd features;  // points.size() x space.dim()
  std::vector<int> csv_rows; // 1-based CSV row of each point (for messages)
};

// Reads a pool from a table whose columns are the parameter names (every parameter must be
// present; an `id` column is ignored; other columns are errors). Every row is checked against
// the space; the message names row and column. An empty pool is an error.
Result<Pool> load_pool(const SearchSpace& space, const CsvTable& table);

}  // namespace kiln::discover
