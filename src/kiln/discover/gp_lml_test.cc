// The GP-fit linear algebra (internal/gp_lml.h) of every instruction set this CPU runs against
// Eigen, at odd sizes: point counts around the 2-, 4-, 8- and 32-row steps (tails), 1..10
// dimensions, both kernels, a leading dimension larger than the point count, far-apart points
// (exp underflow), a matrix that is not positive definite; and gp_log_posterior (the fast path)
// against gp_log_posterior_reference (Eigen) for values and gradients.
#include "kiln/discover/internal/gp_lml.h"

#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <cmath>
#include <random>

#include "kiln/discover/gp.h"
#include "kiln/discover/kernels.h"

namespace kiln::discover {
namespace {

using internal::GpLml;
using internal::GpLmlArgs;

const int kSizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 63, 65, 130};

Eigen::MatrixXd points(int n, int d, uint64_t seed, double spread) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, spread);
  Eigen::MatrixXd X(n, d);
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < d; ++c) X(i, c) = u(rng);
  return X;
}

struct Terms {
  double quad, logdet_half, grad_s2, trace_w;
  Eigen::VectorXd grad_ls;
  double w_max = 0;  // largest |alpha alpha' - K^-1| entry (reference only)
};

// The definitions: K and the gradient factor entry by entry (r^2 summed from differences, libm's
// sqrt and exp), K^-1 by Eigen's LLT, every trace summed over all pairs.
Terms reference(bool rbf, const Eigen::MatrixXd& Xs, const Eigen::VectorXd& y, double s2, double diag) {
  const int n = static_cast<int>(Xs.rows()), d = static_cast<int>(Xs.cols());
  Eigen::MatrixXd Kf(n, n), G(n, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const double r2 = (Xs.row(i) - Xs.row(j)).squaredNorm(), r = std::sqrt(r2), s5 = std::sqrt(5.0);
      Kf(i, j) = rbf ? s2 * std::exp(-0.5 * r2) : s2 * (1 + s5 * r + 5.0 / 3.0 * r2) * std::exp(-s5 * r);
      G(i, j) = rbf ? Kf(i, j) : s2 * 5.0 / 3.0 * (1 + s5 * r) * std::exp(-s5 * r);
    }
  }
  Eigen::MatrixXd K = Kf;
  K.diagonal().array() += diag;
  Eigen::LLT<Eigen::MatrixXd> llt(K);
  EXPECT_EQ(llt.info(), Eigen::Success);
  Eigen::VectorXd alpha = llt.solve(y);
  Eigen::MatrixXd W = alpha * alpha.transpose() - llt.solve(Eigen::MatrixXd::Identity(n, n));
  Terms t;
  t.quad = y.dot(alpha);
  t.logdet_half = 0;
  for (int i = 0; i < n; ++i) t.logdet_half += std::log(llt.matrixLLT()(i, i));
  t.grad_s2 = 0.5 * W.cwiseProduct(Kf).sum();
  t.trace_w = W.trace();
  t.w_max = W.cwiseAbs().maxCoeff();
  t.grad_ls.setZero(d);
  for (int c = 0; c < d; ++c)
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) t.grad_ls[c] += 0.5 * W(i, j) * G(i, j) * std::pow(Xs(i, c) - Xs(j, c), 2);
  return t;
}

Terms run(const GpLml& l, bool rbf, const Eigen::MatrixXd& Xs, const Eigen::VectorXd& y, double s2, double diag, bool* ok) {
  const int n = static_cast<int>(Xs.rows()), d = static_cast<int>(Xs.cols()), ldx = n + 3;
  std::vector<double> xs(static_cast<size_t>(ldx) * d, std::nan("")), work(internal::gp_lml_work_size(n), std::nan(""));
  for (int c = 0; c < d; ++c)
    for (int i = 0; i < n; ++i) xs[static_cast<size_t>(c) * ldx + i] = Xs(i, c);
  Terms t;
  t.grad_ls.setConstant(d, std::nan(""));
  GpLmlArgs a;
  a.rbf = rbf;
  a.n = n;
  a.d = d;
  a.xs = xs.data();
  a.ldx = ldx;
  a.y = y.data();
  a.s2 = s2;
  a.diag = diag;
  a.grad = true;
  a.work = work.data();
  a.grad_ls = t.grad_ls.data();
  *ok = l.evaluate(a);
  t.quad = a.quad;
  t.logdet_half = a.logdet_half;
  t.grad_s2 = a.grad_s2;
  t.trace_w = a.trace_w;
  return t;
}

TEST(GpLml, EveryIsaMatchesEigenAtOddSizes) {
  for (const GpLml* l : internal::available_gp_lmls()) {
    for (int n : kSizes) {
      for (int d : {1, 3, 10}) {
        for (bool rbf : {false, true}) {
          for (double spread : {1.0, 400.0}) {  // 400: most pairs far apart (exp flushed to 0)
            SCOPED_TRACE(testing::Message() << l->name << " n " << n << " d " << d << (rbf ? " rbf" : " matern") << " spread " << spread);
            Eigen::MatrixXd Xs = points(n, d, 7 * n + d, spread);
            Eigen::VectorXd y = points(n, 1, 3 * n + 1, 2.0).col(0).array() - 1.0;
            const double s2 = 1.3, diag = 0.05;
            Terms r = reference(rbf, Xs, y, s2, diag);
            bool ok = false;
            Terms t = run(*l, rbf, Xs, y, s2, diag, &ok);
            ASSERT_TRUE(ok);
            // Sums of n^2 terms of W = alpha alpha' - K^-1 (cond(K) <= 1 + n s2 / diag): an
            // absolute tolerance in units of W's largest entry.
            const double sc = 1e-13 * n * n * (1 + r.w_max) * s2;
            EXPECT_NEAR(t.quad, r.quad, 1e-11 * (1 + std::abs(r.quad)) * n);
            EXPECT_NEAR(t.logdet_half, r.logdet_half, 1e-12 * n * (1 + std::abs(r.logdet_half)));
            EXPECT_NEAR(t.grad_s2, r.grad_s2, sc);
            EXPECT_NEAR(t.trace_w, r.trace_w, sc);
            for (int c = 0; c < d; ++c) EXPECT_NEAR(t.grad_ls[c], r.grad_ls[c], sc * spread * spread) << "dim " << c;
          }
        }
      }
    }
  }
}

TEST(GpLml, CholeskyMatchesEigenAndRejectsIndefinite) {
  for (const GpLml* l : internal::available_gp_lmls()) {
    for (int n : {1, 2, 3, 5, 8, 9, 17, 33, 65, 130, 257}) {
      SCOPED_TRACE(testing::Message() << l->name << " n " << n);
      Eigen::MatrixXd B = points(n, n, n, 1.0);
      Eigen::MatrixXd A = B * B.transpose() + n * Eigen::MatrixXd::Identity(n, n);
      const int lda = n + 5;
      std::vector<double> buf(static_cast<size_t>(lda) * n, -7.0);
      for (int j = 0; j < n; ++j)
        for (int i = j; i < n; ++i) buf[static_cast<size_t>(j) * lda + i] = A(i, j);
      ASSERT_TRUE(l->cholesky(buf.data(), n, lda));
      Eigen::MatrixXd L = A.llt().matrixL();
      double worst = 0;
      for (int j = 0; j < n; ++j) {
        for (int i = 0; i < j; ++i) ASSERT_EQ(buf[static_cast<size_t>(j) * lda + i], -7.0) << "upper triangle touched";
        for (int i = j; i < n; ++i) worst = std::max(worst, std::abs(buf[static_cast<size_t>(j) * lda + i] - L(i, j)));
        for (int i = n; i < lda; ++i) ASSERT_EQ(buf[static_cast<size_t>(j) * lda + i], -7.0) << "past the last row";
      }
      EXPECT_LT(worst, 1e-12 * n * std::sqrt(A.diagonal().maxCoeff()));
      // Not positive definite: a negative eigenvalue, and a NaN pivot.
      if (n >= 2) {
        Eigen::MatrixXd C = A;
        C(n - 1, n - 2) = C(n - 2, n - 1) = 10.0 * A.diagonal().maxCoeff();
        std::vector<double> c(C.data(), C.data() + C.size());
        EXPECT_FALSE(l->cholesky(c.data(), n, n));
      }
      std::vector<double> c(A.data(), A.data() + A.size());
      c[static_cast<size_t>(n - 1) * n + n - 1] = std::nan("");
      EXPECT_FALSE(l->cholesky(c.data(), n, n));
    }
  }
}

TEST(GpLml, KernelLowerMatchesKernelMatrix) {
  for (const GpLml* l : internal::available_gp_lmls()) {
    for (int n : {1, 2, 3, 9, 17, 33, 130}) {
      for (int d : {1, 4, 10}) {
        for (bool rbf : {false, true}) {
          SCOPED_TRACE(testing::Message() << l->name << " n " << n << " d " << d << (rbf ? " rbf" : " matern"));
          Eigen::MatrixXd Xs = points(n, d, n + 11 * d, 3.0);
          Kernel k{rbf ? KernelType::kRbf : KernelType::kMatern52, Eigen::VectorXd::Ones(d), 0.7};
          Eigen::MatrixXd R = k.matrix(Xs, Xs);
          R.diagonal().array() += 0.25;
          Eigen::MatrixXd K = Eigen::MatrixXd::Constant(n, n, -3.0);
          l->kernel_lower(rbf, Xs.data(), n, n, d, 0.7, 0.25, K.data(), n);
          for (int j = 0; j < n; ++j) {
            for (int i = 0; i < j; ++i) ASSERT_EQ(K(i, j), -3.0);
            for (int i = j; i < n; ++i) EXPECT_NEAR(K(i, j), R(i, j), 1e-13) << i << "," << j;
          }
        }
      }
    }
  }
}

TEST(GpLml, LogPosteriorMatchesTheReference) {
  for (int n : {1, 5, 17, 64, 129}) {
    for (int d : {1, 2, 10}) {
      for (KernelType kt : {KernelType::kMatern52, KernelType::kRbf}) {
        for (bool learn_noise : {true, false}) {
          SCOPED_TRACE(testing::Message() << "n " << n << " d " << d << " " << kernel_name(kt) << " learn_noise " << learn_noise);
          Eigen::MatrixXd X = points(n, d, 5 * n + d, 1.0);
          Eigen::VectorXd y(n);
          for (int i = 0; i < n; ++i) y[i] = std::sin(4 * X(i, 0)) + (d > 1 ? X(i, 1) : 0.0);
          Eigen::VectorXd th(d + 2);
          for (int c = 0; c < d; ++c) th[c] = -1.0 + 0.2 * c;
          th[d] = 0.3;
          th[d + 1] = -3.0;
          Eigen::VectorXd g, gr;
          double v = gp_log_posterior(X, y, kt, th, learn_noise, 1e-3, true, &g);
          double vr = gp_log_posterior_reference(X, y, kt, th, learn_noise, 1e-3, true, &gr);
          EXPECT_NEAR(v, vr, 1e-9 * (1 + std::abs(vr)));
          EXPECT_EQ(gp_log_posterior(X, y, kt, th, learn_noise, 1e-3, true, nullptr), v);
          ASSERT_EQ(g.size(), gr.size());
          for (int i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], gr[i], 1e-8 * (1 + gr.lpNorm<Eigen::Infinity>())) << "theta " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace kiln::discover
