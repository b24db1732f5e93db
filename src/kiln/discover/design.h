// kiln/discover/design.h — space-filling designs in the unit cube.
//
// Initial experiments and the starts of the acquisition optimiser come from these. Sobol
// points use primitive polynomials found at start-up in order of degree, with initial direction
// numbers from a fixed generator (not the Joe–Kuo table: Kiln ships no third-party tables) and a
// seeded random digital shift, so every seed gives a different, equally uniform point set.
//
//   Eigen::MatrixXd U = kiln::discover::sobol(64, 5, /*seed=*/1);          // 64 x 5 in [0, 1)
//   Eigen::MatrixXd L = kiln::discover::latin_hypercube(10, 3, /*seed=*/1);
#pragma once

#include <Eigen/Core>
#include <cstdint>

namespace kiln::discover {

// n x d points of a digitally shifted Sobol sequence (d <= 1000).
Eigen::MatrixXd sobol(int n, int d, uint64_t seed);
// n x d Latin hypercube: each column hits each of n strata once, jittered within the stratum.
Eigen::MatrixXd latin_hypercube(int n, int d, uint64_t seed);
// n x d independent uniforms.
Eigen::MatrixXd uniform_random(int n, int d, uint64_t seed);

}  // namespace kiln::discover
