#include "kiln/control/stats.h"

#include <algorithm>
#include <cmath>

namespace kiln::control {

int LatencyHistogram::bucket_of(int64_t ns) {
  if (ns < 0) ns = 0;
  uint64_t v = static_cast<uint64_t>(ns);
  if (v < 64) return static_cast<int>(v);
  int e = 63 - __builtin_clzll(v);  // >= 6
  int b = 64 + (e - 6) * 32 + static_cast<int>((v >> (e - 5)) - 32);
  return std::min(b, kBuckets - 1);
}

int64_t LatencyHistogram::bucket_low(int b) {
  if (b < 64) return b;
  int e = 6 + (b - 64) / 32;
  int64_t sub = (b - 64) % 32 + 32;
  return sub << (e - 5);
}

int64_t LatencyHistogram::bucket_width(int b) {
  if (b < 64) return 1;
  int e = 6 + (b - 64) / 32;
  return int64_t{1} << (e - 5);
}

void LatencyHistogram::record(int64_t ns) {
  if (ns < 0) ns = 0;
  ++counts_[static_cast<size_t>(bucket_of(ns))];
  ++count_;
  sum_ns_ += ns;
  if (ns > max_ns_) max_ns_ = ns;
}

void LatencyHistogram::clear() { *this = LatencyHistogram(); }

void LatencyHistogram::merge(const LatencyHistogram& o) {
  for (int i = 0; i < kBuckets; ++i) counts_[static_cast<size_t>(i)] += o.counts_[static_cast<size_t>(i)];
  count_ += o.count_;
  sum_ns_ += o.sum_ns_;
  max_ns_ = std::max(max_ns_, o.max_ns_);
}

double LatencyHistogram::percentile_us(double q) const {
  if (count_ == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts_[static_cast<size_t>(b)];
    if (seen >= rank) {
      double mid = b < 64 ? static_cast<double>(b)
                          : static_cast<double>(bucket_low(b)) + 0.5 * static_cast<double>(bucket_width(b));
      return std::min(mid, static_cast<double>(max_ns_)) * 1e-3;
    }
  }
  return max_us();
}

}  // namespace kiln::control
