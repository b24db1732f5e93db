// Single-core fp32 FMA peak of this machine, in GFLOP/s (1 FMA lane = 2 FLOP).
//
// Built by bench/compare (never with -march=native) into its work folder, once per instruction set:
//   g++ -O2 -mavx2 -mfma            bench/peak_flops.cc -o peak_flops_avx2
//   g++ -O2 -mavx2 -mfma -mavx512f  bench/peak_flops.cc -o peak_flops_avx512   (only if /proc/cpuinfo has avx512f)
// Run: peak_flops_avx2 [--reps 15] [--iters N]; prints one JSON object:
//   {"isa": "avx2"|"avx512f", "lanes": 8|16, "chains": C, "gflops_cpu": ..., "gflops_wall": ..., "reps": R}
// The loop keeps C independent accumulator chains (more than FMA latency x FMA ports, so the
// loop is throughput-bound) of vfmadd231ps on registers only. Each rep is timed with both the
// thread's CPU clock (not charged while the vCPU is preempted) and the wall clock; the best rep of
// each is reported. gflops_cpu is the peak bench/compare uses.
#include <immintrin.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

double now(clockid_t c) {
  timespec ts;
  clock_gettime(c, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#if defined(__AVX512F__)
constexpr const char* kIsa = "avx512f";
constexpr int kLanes = 16;
constexpr int kChains = 16;  // 32 zmm registers: 16 accumulators + 2 operands
using V = __m512;
inline V vset(float x) { return _mm512_set1_ps(x); }
inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
inline float vsum(V a) { return _mm512_reduce_add_ps(a); }
#elif defined(__AVX2__) && defined(__FMA__)
constexpr const char* kIsa = "avx2";
constexpr int kLanes = 8;
constexpr int kChains = 12;  // 16 ymm registers: 12 accumulators + 2 operands
using V = __m256;
inline V vset(float x) { return _mm256_set1_ps(x); }
inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
inline float vsum(V a) {
  alignas(32) float t[8];
  _mm256_store_ps(t, a);
  float s = 0;
  for (float x : t) s += x;
  return s;
}
#else
#error "build with -mavx2 -mfma (and -mavx512f for the AVX-512 variant)"
#endif

// Runs iters x 4 x kChains FMAs. The values stay bounded: acc = acc * 0.999999 + 1e-7.
__attribute__((noinline)) float fma_loop(long iters, float seed) {
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = vset(seed + i);
  const V m = vset(0.999999f), c = vset(1e-7f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {
#pragma GCC unroll 32
      for (int i = 0; i < kChains; ++i) acc[i] = vfma(acc[i], m, c);
    }
    // Keep the compiler from collapsing the loop: the registers must be live.
    __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]));
  }
  V s = acc[0];
  for (int i = 1; i < kChains; ++i) s = vadd(s, acc[i]);
  return vsum(s);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 15;
  long iters = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) iters = std::atol(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--reps R] [--iters N]\n", argv[0]);
      return 2;
    }
  }
  volatile float sink = 0;
  if (iters <= 0) {  // calibrate: about 50 ms of thread CPU time per rep
    iters = 1 << 14;
    for (;;) {
      double t0 = now(CLOCK_THREAD_CPUTIME_ID);
      sink = sink + fma_loop(iters, 1.0f);
      double dt = now(CLOCK_THREAD_CPUTIME_ID) - t0;
      if (dt > 0.02 || iters > (1L << 34)) {
        iters = static_cast<long>(iters * 0.05 / (dt > 1e-6 ? dt : 1e-6)) + 1;
        break;
      }
      iters *= 4;
    }
  }
  const double flop = 2.0 * kLanes * kChains * 4.0 * static_cast<double>(iters);
  double best_cpu = 0, best_wall = 0;
  for (int r = 0; r < reps; ++r) {
    double c0 = now(CLOCK_THREAD_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
    sink = sink + fma_loop(iters, 1.0f + r);
    double c1 = now(CLOCK_THREAD_CPUTIME_ID), w1 = now(CLOCK_MONOTONIC);
    if (c1 > c0 && flop / (c1 - c0) > best_cpu) best_cpu = flop / (c1 - c0);
    if (w1 > w0 && flop / (w1 - w0) > best_wall) best_wall = flop / (w1 - w0);
  }
  std::printf("{\"isa\": \"%s\", \"lanes\": %d, \"chains\": %d, \"iters\": %ld, \"reps\": %d, "
              "\"gflops_cpu\": %.2f, \"gflops_wall\": %.2f, \"checksum\": %g}\n",
              kIsa, kLanes, kChains, iters, reps, best_cpu / 1e9, best_wall / 1e9, static_cast<double>(sink));
  return 0;
}
