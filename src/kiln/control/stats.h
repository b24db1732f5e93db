// kiln/control/stats.h — latency histograms for loop timing and inference time.
//
// A log-linear histogram (32 sub-buckets per power of two, about 3% resolution) over nanoseconds,
// fixed size, recorded without allocation from one thread. Percentiles are read after the run:
//
//   kiln::control::LatencyHistogram h;
//   h.record(12'345);                 // ns
//   double p99 = h.percentile_us(0.99);
#pragma once

#include <array>
#include <cstdint>

namespace kiln::control {

class LatencyHistogram {
 public:
  static constexpr int kBuckets = 64 + 57 * 32;

  void record(int64_t ns);
  void clear();
  void merge(const LatencyHistogram& o);
  uint64_t count() const { return count_; }
  int64_t max_ns() const { return max_ns_; }
  // Nearest-rank percentile (q in [0,1]) in microseconds: the middle of the bucket holding that
  // rank, never above the exact maximum. 0 when empty.
  double percentile_us(double q) const;
  double max_us() const { return static_cast<double>(max_ns_) * 1e-3; }
  double mean_us() const { return count_ ? static_cast<double>(sum_ns_) / static_cast<double>(count_) * 1e-3 : 0; }

  static int bucket_of(int64_t ns);
  static int64_t bucket_low(int b);
  static int64_t bucket_width(int b);

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  int64_t max_ns_ = 0;
  int64_t sum_ns_ = 0;
};

}  // namespace kiln::control
