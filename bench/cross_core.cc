// bench/cross_core.cc — what handing work between two cores costs on this machine, the numbers
// behind splitting small layers over threads (docs/benchmarks.md, Int8, "2 threads").
//
//   g++ -O2 -std=c++20 -pthread -Isrc bench/cross_core.cc src/kiln/core/thread_pool.cc -o build/cross_core
//   build/cross_core [--json]
//
// Three probes, each the median of 15 repetitions:
//   round trip   two threads bounce one cache line (the latency of one hand-over, both ways);
//   read N KB    thread B reads N KB (one byte per 64-byte line) that thread A has just written,
//                against reading it again right after (its own cache);
//   parallel_for kiln::ThreadPool(2): 8 tasks that each update 1/8 of a float buffer, against the
//                same loop on one thread (the pool's fork-join cost on work of that size).
// Nothing here is asserted: it reports.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "kiln/core/thread_pool.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double us_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

// Nanoseconds for one hand-over and back.
double round_trip_ns() {
  alignas(64) static std::atomic<int> flag{0};
  constexpr int kN = 200000;
  flag.store(0);
  std::thread b([] {
    for (int i = 0; i < kN; ++i) {
      while (flag.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      flag.store(2 * i + 2, std::memory_order_release);
    }
  });
  const auto t0 = Clock::now();
  for (int i = 0; i < kN; ++i) {
    flag.store(2 * i + 1, std::memory_order_release);
    while (flag.load(std::memory_order_acquire) != 2 * i + 2) {
    }
  }
  const double ns = us_since(t0) * 1000.0 / kN;
  b.join();
  return ns;
}

// Microseconds for thread B to read `bytes` just written by thread A (remote), and to read them
// again (local); medians over rounds.
void remote_read(size_t bytes, double* remote_us, double* local_us) {
  std::vector<uint8_t> buf(bytes, 1);
  std::atomic<int> turn{0};
  constexpr int kRounds = 2000;
  std::vector<double> remote, local;
  remote.reserve(kRounds);
  local.reserve(kRounds);
  volatile uint64_t sink = 0;
  std::thread b([&] {
    for (int r = 0; r < kRounds; ++r) {
      while (turn.load(std::memory_order_acquire) != 1) {
      }
      uint64_t s = 0;
      auto t0 = Clock::now();
      for (size_t k = 0; k < bytes; k += 64) s += buf[k];
      remote.push_back(us_since(t0));
      t0 = Clock::now();
      for (size_t k = 0; k < bytes; k += 64) s += buf[k];
      local.push_back(us_since(t0));
      sink = s;
      turn.store(0, std::memory_order_release);
    }
  });
  for (int r = 0; r < kRounds; ++r) {
    while (turn.load(std::memory_order_acquire) != 0) {
    }
    std::memset(buf.data(), r & 0xff, bytes);
    turn.store(1, std::memory_order_release);
  }
  b.join();
  (void)sink;
  *remote_us = median(remote);
  *local_us = median(local);
}

// Microseconds per update of `n` floats in 8 tasks: on one thread, and through a 2-thread pool.
void split_loop(int64_t n, double* one_us, double* two_us) {
  std::vector<float> buf(static_cast<size_t>(n), 1.f);
  auto task = [&](int64_t k) {
    float* p = buf.data() + n * k / 8;
    const int64_t m = n * (k + 1) / 8 - n * k / 8;
    for (int64_t j = 0; j < m; ++j) p[j] = p[j] * 0.999f + 0.5f;
  };
  for (int threads : {1, 2}) {
    kiln::ThreadPool pool(threads);
    std::vector<double> reps;
    for (int rep = 0; rep < 15; ++rep) {
      constexpr int kCalls = 2000;
      const auto t0 = Clock::now();
      for (int i = 0; i < kCalls; ++i) pool.parallel_for(8, task);
      reps.push_back(us_since(t0) / kCalls);
    }
    (threads == 1 ? *one_us : *two_us) = median(reps);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool json = argc > 1 && std::strcmp(argv[1], "--json") == 0;
  std::vector<double> trips;
  for (int i = 0; i < 15; ++i) trips.push_back(round_trip_ns());
  const double trip = median(trips);
  const size_t sizes[] = {4096, 16384, 65536};
  double remote[3], local[3];
  for (int i = 0; i < 3; ++i) remote_read(sizes[i], &remote[i], &local[i]);
  const int64_t floats[] = {1024, 4096, 16384};
  double one[3], two[3];
  for (int i = 0; i < 3; ++i) split_loop(floats[i], &one[i], &two[i]);
  if (json) {
    std::printf("{\"round_trip_ns\": %.1f, \"read\": [", trip);
    for (int i = 0; i < 3; ++i)
      std::printf("%s{\"bytes\": %zu, \"remote_us\": %.3f, \"local_us\": %.3f}", i ? ", " : "", sizes[i], remote[i], local[i]);
    std::printf("], \"split\": [");
    for (int i = 0; i < 3; ++i)
      std::printf("%s{\"floats\": %lld, \"one_thread_us\": %.3f, \"two_threads_us\": %.3f}", i ? ", " : "",
                  static_cast<long long>(floats[i]), one[i], two[i]);
    std::printf("]}\n");
    return 0;
  }
  std::printf("cache-line round trip between two threads: %.0f ns\n", trip);
  for (int i = 0; i < 3; ++i)
    std::printf("read %3zu KB written by the other core: %.2f us (from its own cache: %.2f us)\n", sizes[i] / 1024,
                remote[i], local[i]);
  for (int i = 0; i < 3; ++i)
    std::printf("8 tasks over %5lld floats: 1 thread %.2f us, 2 threads (kiln::ThreadPool) %.2f us\n",
                static_cast<long long>(floats[i]), one[i], two[i]);
  return 0;
}
