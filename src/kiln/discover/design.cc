#include "kiln/discover/design.h"

#include <algorithm>
#include <mutex>
#include <numeric>
#include <random>
#include <vector>

namespace kiln::discover {
namespace {

constexpr int kBits = 52;

// Degree of a GF(2) polynomial stored as bits.
int degree(uint64_t p) { return 63 - __builtin_clzll(p); }

uint64_t mulmod(uint64_t a, uint64_t b, uint64_t p, int deg) {
  uint64_t r = 0;
  while (b) {
    if (b & 1) r ^= a;
    b >>= 1;
    a <<= 1;
    if (a >> deg & 1) a ^= p;
  }
  return r;
}

// p is primitive when x has multiplicative order exactly 2^deg - 1 modulo p.
bool primitive(uint64_t p) {
  int s = degree(p);
  if (!(p & 1)) return false;
  uint64_t order = (uint64_t{1} << s) - 1;
  auto power = [&](uint64_t e) {
    uint64_t r = 1, b = 2 % p;
    if (s == 1) b = 0;  // x mod (x+1) = 1
    if (s == 1) return uint64_t{1};
    while (e) {
      if (e & 1) r = mulmod(r, b, p, s);
      b = mulmod(b, b, p, s);
      e >>= 1;
    }
    return r;
  };
  if (power(order) != 1) return false;
  for (uint64_t q = 2; q * q <= order; ++q) {  // every prime factor q of the order
    if (order % q) continue;
    if (power(order / q) == 1) return false;
    uint64_t other = order / q;
    bool prime = true;
    for (uint64_t f = 2; f * f <= other; ++f)
      if (other % f == 0) { prime = false; break; }
    if (prime && power(order / other) == 1) return false;
  }
  // The cofactor loop above misses a prime factor larger than sqrt(order) only when it is the
  // order itself (a Mersenne prime); then order 1 would mean x == 1, excluded since p != x+1.
  return true;
}

struct Directions {
  std::vector<std::vector<uint64_t>> v;  // per dimension, kBits direction numbers
};

const Directions& directions() {
  static Directions dirs;
  static std::once_flag once;
  std::call_once(once, [] {
    const int kMaxDim = 1000;
    dirs.v.assign(kMaxDim, std::vector<uint64_t>(kBits));
    for (int b = 0; b < kBits; ++b) dirs.v[0][b] = uint64_t{1} << (kBits - 1 - b);
    uint64_t lcg = 0x2545F4914F6CDD1Dull;
    uint64_t poly = 3;  // x + 1
    for (int dim = 1; dim < kMaxDim; ++dim) {
      while (!primitive(poly)) ++poly;
      int s = degree(poly);
      std::vector<uint64_t> m(kBits);
      for (int k = 0; k < s && k < kBits; ++k) {
        lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t lim = uint64_t{1} << (k + 1);
        m[k] = ((lcg >> 33) % lim) | 1;  // odd and < 2^(k+1)
      }
      for (int k = s; k < kBits; ++k) {
        uint64_t val = m[k - s] ^ (m[k - s] << s);
        for (int j = 1; j < s; ++j)
          if (poly >> (s - j) & 1) val ^= m[k - j] << j;
        m[k] = val;
      }
      for (int k = 0; k < kBits; ++k) dirs.v[dim][k] = m[k] << (kBits - 1 - k);
      ++poly;
    }
  });
  return dirs;
}

}  // namespace

Eigen::MatrixXd sobol(int n, int d, uint64_t seed) {
  const Directions& dirs = directions();
  d = std::min(d, static_cast<int>(dirs.v.size()));
  Eigen::MatrixXd out(n, d);
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 1);
  std::vector<uint64_t> shift(d), x(d, 0);
  for (int j = 0; j < d; ++j) shift[j] = rng() >> (64 - kBits);
  const double scale = 1.0 / static_cast<double>(uint64_t{1} << kBits);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) out(i, j) = static_cast<double>(x[j] ^ shift[j]) * scale;
    // Gray-code order: flip the direction number of the lowest zero bit of i.
    int c = __builtin_ctzll(~static_cast<uint64_t>(i));
    if (c >= kBits) c = kBits - 1;
    for (int j = 0; j < d; ++j) x[j] ^= dirs.v[j][c];
  }
  return out;
}

Eigen::MatrixXd latin_hypercube(int n, int d, uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 2);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Eigen::MatrixXd out(n, d);
  std::vector<int> perm(n);
  for (int j = 0; j < d; ++j) {
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int i = 0; i < n; ++i) out(i, j) = (perm[i] + u(rng)) / n;
  }
  return out;
}

Eigen::MatrixXd uniform_random(int n, int d, uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Eigen::MatrixXd out(n, d);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) out(i, j) = u(rng);
  return out;
}

}  // namespace kiln::discover
