// Every GP screen this CPU can run against the portable reference and against the kernel's
// matrix path, at odd sizes: candidate counts that are not multiples of the 4-row step,
// observation counts below and around the 4- and 8-column steps (padding), 1..10 dimensions, both
// kernels, a leading dimension larger than the row count, and candidates far from everything
// (exp underflow).
#include "kiln/discover/internal/gp_screen.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "kiln/discover/kernels.h"

namespace kiln::discover {
namespace {

using internal::GpScreen;
using internal::GpScreenArgs;
using internal::kScreenMaxNear;

struct Result {
  std::vector<double> mean, near_r2;
  std::vector<int32_t> near_idx;
};

Result run(const GpScreen& s, bool rbf, double s2, const Eigen::MatrixXd& C, int64_t ldc, const Eigen::MatrixXd& O,
           const Eigen::VectorXd& alpha) {
  const int64_t m = C.rows(), n = O.rows(), d = C.cols(), n_pad = (n + internal::kScreenPad - 1) / internal::kScreenPad * internal::kScreenPad;
  std::vector<double> cand(ldc * d, std::nan("")), obs(d * n_pad, internal::kScreenPadCoord), al(n_pad, 0.0);
  for (int64_t k = 0; k < d; ++k)
    for (int64_t i = 0; i < m; ++i) cand[k * ldc + i] = C(i, k);
  for (int64_t k = 0; k < d; ++k)
    for (int64_t j = 0; j < n; ++j) obs[k * n_pad + j] = O(j, k);
  for (int64_t j = 0; j < n; ++j) al[j] = alpha[j];
  Result r;
  r.mean.assign(m, 0);
  r.near_r2.assign(m * kScreenMaxNear, -1);
  r.near_idx.assign(m * kScreenMaxNear, -1);
  GpScreenArgs a;
  a.rbf = rbf;
  a.s2 = s2;
  a.d = static_cast<int>(d);
  a.obs = obs.data();
  a.alpha = al.data();
  a.n = n;
  a.n_pad = n_pad;
  a.cand = cand.data();
  a.m = m;
  a.ldc = ldc;
  a.k_near = static_cast<int>(std::min<int64_t>(kScreenMaxNear, n));
  a.mean = r.mean.data();
  a.near_idx = r.near_idx.data();
  a.near_r2 = r.near_r2.data();
  s.run(a);
  return r;
}

TEST(GpScreen, EveryIsaMatchesTheReferenceAtOddSizes) {
  const auto screens = internal::available_gp_screens();
  ASSERT_FALSE(screens.empty());
  EXPECT_STREQ(screens.back()->name, "f64_gp_screen_portable");
  const double eps = std::numeric_limits<double>::epsilon();
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> g(0, 1);
  int cases = 0;
  for (int d : {1, 3, 10})
    for (int n : {1, 2, 3, 4, 5, 7, 8, 9, 17, 33, 130})
      for (int m : {1, 3, 4, 5, 13})
        for (bool rbf : {false, true}) {
          const double s2 = 0.5 + u(rng);
          Eigen::MatrixXd O(n, d), C(m, d);
          for (int j = 0; j < n; ++j)
            for (int k = 0; k < d; ++k) O(j, k) = 3 * u(rng);
          for (int i = 0; i < m; ++i)
            for (int k = 0; k < d; ++k) C(i, k) = 3 * u(rng) + (i == m - 1 ? 60.0 : 0.0);  // last row: far away
          Eigen::VectorXd alpha(n);
          for (int j = 0; j < n; ++j) alpha[j] = 10 * g(rng);
          // The kernel's matrix path (unit lengthscales: the inputs are already scaled).
          Kernel kern{rbf ? KernelType::kRbf : KernelType::kMatern52, Eigen::VectorXd::Ones(d), s2};
          Eigen::VectorXd want = kern.matrix(C, O) * alpha;
          const double flush = 1e-290 * s2 * alpha.lpNorm<1>();  // exp flushed to 0 below exp(-700)
          const Result ref = run(*screens.back(), rbf, s2, C, m + 3, O, alpha);
          for (const GpScreen* s : screens) {
            const Result got = run(*s, rbf, s2, C, m + 3, O, alpha);
            const int k = std::min(kScreenMaxNear, n);
            for (int i = 0; i < m; ++i) {
              const double tol = 64 * (n + 64) * eps * s2 * alpha.lpNorm<1>() + flush;
              EXPECT_NEAR(got.mean[i], ref.mean[i], tol) << s->name << " d=" << d << " n=" << n << " m=" << m << " row " << i;
              EXPECT_NEAR(got.mean[i], want[i], 1e-10 * s2 * alpha.lpNorm<1>()) << s->name << " vs Kernel::matrix";
              for (int t = 0; t < k; ++t) {
                const int at = i * kScreenMaxNear + t;
                EXPECT_EQ(got.near_idx[at], ref.near_idx[at]) << s->name << " d=" << d << " n=" << n << " m=" << m;
                EXPECT_NEAR(got.near_r2[at], ref.near_r2[at], 1e-12 * ref.near_r2[at]) << s->name;
                if (t > 0) {
                  EXPECT_LE(ref.near_r2[at - 1], ref.near_r2[at]);
                }
              }
              // The reference's nearest really are the k smallest distances.
              std::vector<double> all(n);
              for (int j = 0; j < n; ++j) all[j] = (C.row(i) - O.row(j)).squaredNorm();
              std::sort(all.begin(), all.end());
              for (int t = 0; t < k; ++t) EXPECT_NEAR(ref.near_r2[i * kScreenMaxNear + t], all[t], 1e-12 * all[t]);
            }
            ++cases;
          }
        }
  EXPECT_GT(cases, 0);
  std::printf("[ info ] screens compared: %zu (%s first)\n", screens.size(), screens.front()->name);
}

}  // namespace
}  // namespace kiln::discover
