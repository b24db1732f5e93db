#include "kiln/discover/kernels.h"

#include <cmath>

namespace kiln::discover {

const char* kernel_name(KernelType t) { return t == KernelType::kRbf ? "rbf" : "matern52"; }

Eigen::MatrixXd Kernel::scaled_sqdist(const Eigen::MatrixXd& A, const Eigen::MatrixXd& B) const {
  Eigen::ArrayXd inv = lengthscales.array().inverse();
  Eigen::MatrixXd As = A * inv.matrix().asDiagonal();
  Eigen::MatrixXd Bs = B * inv.matrix().asDiagonal();
  Eigen::VectorXd an = As.rowwise().squaredNorm(), bn = Bs.rowwise().squaredNorm();
  Eigen::MatrixXd R2 = -2.0 * As * Bs.transpose();
  R2.colwise() += an;
  R2.rowwise() += bn.transpose();
  return R2.cwiseMax(0.0);
}

Eigen::MatrixXd Kernel::from_sqdist(const Eigen::MatrixXd& R2) const {
  if (type == KernelType::kRbf) return (signal_variance * (-0.5 * R2.array()).exp()).matrix();
  const double s5 = std::sqrt(5.0);
  Eigen::ArrayXXd r = R2.array().sqrt();
  return (signal_variance * (1.0 + s5 * r + (5.0 / 3.0) * R2.array()) * (-s5 * r).exp()).matrix();
}

Eigen::MatrixXd Kernel::grad_factor(const Eigen::MatrixXd& R2) const {
  if (type == KernelType::kRbf) return from_sqdist(R2);
  const double s5 = std::sqrt(5.0);
  Eigen::ArrayXXd r = R2.array().sqrt();
  return (signal_variance * (5.0 / 3.0) * (1.0 + s5 * r) * (-s5 * r).exp()).matrix();
}

void Kernel::from_sqdist_and_grad_factor(const Eigen::MatrixXd& R2, Eigen::MatrixXd* K, Eigen::MatrixXd* G) const {
  if (type == KernelType::kRbf) {
    *K = from_sqdist(R2);
    *G = *K;
    return;
  }
  // The same expressions as from_sqdist and grad_factor, sharing r and exp(-sqrt5 r).
  const double s5 = std::sqrt(5.0);
  Eigen::ArrayXXd r = R2.array().sqrt();
  Eigen::ArrayXXd e = (-s5 * r).exp();
  *K = (signal_variance * (1.0 + s5 * r + (5.0 / 3.0) * R2.array()) * e).matrix();
  *G = (signal_variance * (5.0 / 3.0) * (1.0 + s5 * r) * e).matrix();
}

Eigen::MatrixXd Kernel::matrix(const Eigen::MatrixXd& A, const Eigen::MatrixXd& B) const {
  Eigen::MatrixXd Bs, out;
  Eigen::VectorXd bn;
  prescale(B, &Bs, &bn);
  matrix_into(A, Bs, bn, &out);
  return out;
}

void Kernel::prescale(const Eigen::MatrixXd& B, Eigen::MatrixXd* Bs, Eigen::VectorXd* bn) const {
  *Bs = B * lengthscales.array().inverse().matrix().asDiagonal();
  *bn = Bs->rowwise().squaredNorm();
}

void Kernel::matrix_into(const Eigen::MatrixXd& A, const Eigen::MatrixXd& Bs, const Eigen::VectorXd& bn, Eigen::MatrixXd* out) const {
  Eigen::MatrixXd As = A * lengthscales.array().inverse().matrix().asDiagonal();
  Eigen::VectorXd an = As.rowwise().squaredNorm();
  out->resize(A.rows(), Bs.rows());
  out->noalias() = -2.0 * As * Bs.transpose();
  out->colwise() += an;
  out->rowwise() += bn.transpose();
  auto R = out->array();
  R = R.max(0.0);
  if (type == KernelType::kRbf) {
    R = signal_variance * (-0.5 * R).exp();
  } else {
    const double s5 = std::sqrt(5.0);
    // In place, column by column: r = sqrt(r2) once per element.
    for (Eigen::Index j = 0; j < R.cols(); ++j) {
      auto c = R.col(j);
      Eigen::ArrayXd r = c.sqrt();
      c = signal_variance * (1.0 + s5 * r + (5.0 / 3.0) * c) * (-s5 * r).exp();
    }
  }
}

Eigen::MatrixXd Kernel::gradient_wrt_x(const Eigen::VectorXd& x, const Eigen::MatrixXd& B) const {
  Eigen::MatrixXd diff = (-B).rowwise() + x.transpose();  // x - b_j
  Eigen::ArrayXd inv2 = lengthscales.array().square().inverse();
  Eigen::VectorXd r2 = (diff.array().square().rowwise() * inv2.transpose()).rowwise().sum();
  // dk/dx_d = -G(r) * (x_d - b_d) / l_d^2 for both kernels, with G the grad_factor.
  Eigen::MatrixXd R2 = r2;
  Eigen::VectorXd g = grad_factor(R2);
  Eigen::MatrixXd out = diff.array().rowwise() * inv2.transpose();
  return -(out.array().colwise() * g.array()).matrix();
}

}  // namespace kiln::discover
