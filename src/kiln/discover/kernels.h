// kiln/discover/kernels.h — stationary ARD covariance functions on unit-cube features.
//
// k(a, b) = s2 * f(r), r^2 = sum_d ((a_d - b_d) / l_d)^2, with one lengthscale l_d per feature
// (automatic relevance determination). Matérn-5/2: f = (1 + √5 r + 5/3 r²) exp(-√5 r);
// RBF: f = exp(-r²/2). Distances come from one matrix product on pre-scaled inputs, and the
// exponentials from Eigen's vectorised array functions, because cross-covariances between a
// 10,000-row pool and 500 observations are the hot path of a proposal.
//
//   kiln::discover::Kernel k{kiln::discover::KernelType::kMatern52, Eigen::VectorXd::Constant(d, 0.3), 1.0};
//   Eigen::MatrixXd K = k.matrix(A, B);          // A.rows() x B.rows()
#pragma once

#include <Eigen/Core>

namespace kiln::discover {

enum class KernelType { kMatern52, kRbf };
const char* kernel_name(KernelType t);

struct Kernel {
  KernelType type = KernelType::kMatern52;
  Eigen::VectorXd lengthscales;  // one per feature, > 0
  double signal_variance = 1.0;

  // Cross-covariance between the rows of A and the rows of B.
  Eigen::MatrixXd matrix(const Eigen::MatrixXd& A, const Eigen::MatrixXd& B) const;
  // The same into a caller-owned matrix (resized only when the shape changes): the pool search
  // reuses one buffer instead of allocating megabytes per block. `Bs` is B already divided by
  // the lengthscales, `bn` its squared row norms (see prescale).
  void matrix_into(const Eigen::MatrixXd& A, const Eigen::MatrixXd& Bs, const Eigen::VectorXd& bn, Eigen::MatrixXd* out) const;
  void prescale(const Eigen::MatrixXd& B, Eigen::MatrixXd* Bs, Eigen::VectorXd* bn) const;
  // Squared scaled distances r² between rows (clamped at 0).
  Eigen::MatrixXd scaled_sqdist(const Eigen::MatrixXd& A, const Eigen::MatrixXd& B) const;
  // f(r) applied to r² elementwise, times signal_variance.
  Eigen::MatrixXd from_sqdist(const Eigen::MatrixXd& R2) const;
  // For gradients: dk/d(log l_d) = G_ij * ((a_d - b_d) / l_d)^2 with G = grad_factor(R2).
  Eigen::MatrixXd grad_factor(const Eigen::MatrixXd& R2) const;
  // from_sqdist and grad_factor together, bit for bit the same values, with one sqrt and one
  // exp per element instead of two (the ML-II objective needs both).
  void from_sqdist_and_grad_factor(const Eigen::MatrixXd& R2, Eigen::MatrixXd* K, Eigen::MatrixXd* G) const;
  // dk(x, b)/dx for one point x against the rows of B: B.rows() x d.
  Eigen::MatrixXd gradient_wrt_x(const Eigen::VectorXd& x, const Eigen::MatrixXd& B) const;
};

}  // namespace kiln::discover
