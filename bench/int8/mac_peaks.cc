// Single-core multiply-add peaks of the instruction sequences Kiln's int8 and fp32 kernels are built
// from, so that an int8-over-fp32 speed-up can be judged against what this CPU can do at all.
//
//   g++ -O2 bench/int8/mac_peaks.cc -o build/mac_peaks && build/mac_peaks [--json]
//
// Each sequence runs on registers only with 12 independent accumulators (more than latency x ports),
// best of 15 reps by the thread's CPU time; a sequence the CPU lacks (CPUID) is skipped. Per step:
//   fp32 ymm        vfmadd231ps                                  8 MACs   (f32_gemm_avx2)
//   int8 exact      vpmaddwd + vpaddd on int16 pairs            16 MACs   (qs8_gemm_avx2: any int8 weight)
//   int8 7-bit      vpmaddubsw + vpmaddwd(ones) + vpaddd        32 MACs   (qs8_gemm_avx2_w7: weights in
//                   [-64, 64]; on 8-bit weights vpmaddubsw's int16 pair sums saturate)
//   int8 AVX-VNNI   vpdpbusd ymm                                32 MACs   (qs8_gemm_avxvnni)
//   fp32 zmm        vfmadd231ps zmm                             16 MACs   (f32 kernels on AVX-512)
//   int8 VNNI zmm   vpdpbusd zmm                                64 MACs   (qs8_gemm_avx512vnni)
// The ratios to fp32 on the same register width bound what an int8 GEMM can gain over an fp32 one
// when both are compute-bound: on AVX2 without VNNI the exact sequence gives at most 2x (1.6x with
// its vpaddd on Zen 3), whatever the kernel around it does.
#include <time.h>

#include <cstdio>
#include <cstring>

namespace {

double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define REP12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
// Operands in registers 13-15 (ymm) or 29-31 (zmm); accumulators 0-11; 12 is a temporary.
#define FMA_Y(i) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #i "\n"
#define EXACT_Y(i) "vpmaddwd %%ymm14, %%ymm15, %%ymm12\n vpaddd %%ymm12, %%ymm" #i ", %%ymm" #i "\n"
#define W7_Y(i) "vpmaddubsw %%ymm14, %%ymm15, %%ymm12\n vpmaddwd %%ymm12, %%ymm13, %%ymm12\n vpaddd %%ymm12, %%ymm" #i ", %%ymm" #i "\n"
#define VNNI_Y(i) "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm" #i "\n"
#define FMA_Z(i) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" #i "\n"
#define VNNI_Z(i) "vpdpbusd %%zmm30, %%zmm31, %%zmm" #i "\n"
#define CLOBBER_Y "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12"

__attribute__((target("avx2,fma"), noinline)) void fma_ymm(long n) {
  __asm__ volatile("1:\n" REP12(FMA_Y) "dec %0\n jnz 1b\n" : "+r"(n) : : CLOBBER_Y, "cc");
}
__attribute__((target("avx2"), noinline)) void exact_ymm(long n) {
  __asm__ volatile("1:\n" REP12(EXACT_Y) "dec %0\n jnz 1b\n" : "+r"(n) : : CLOBBER_Y, "cc");
}
__attribute__((target("avx2"), noinline)) void w7_ymm(long n) {
  __asm__ volatile("1:\n" REP12(W7_Y) "dec %0\n jnz 1b\n" : "+r"(n) : : CLOBBER_Y, "cc");
}
__attribute__((target("avx2,avxvnni"), noinline)) void vnni_ymm(long n) {
  __asm__ volatile("1:\n" REP12(VNNI_Y) "dec %0\n jnz 1b\n" : "+r"(n) : : CLOBBER_Y, "cc");
}
__attribute__((target("avx512f"), noinline)) void fma_zmm(long n) {
  __asm__ volatile("1:\n" REP12(FMA_Z) "dec %0\n jnz 1b\n" : "+r"(n) : : CLOBBER_Y, "cc");
}
__attribute__((target("avx512f,avx512vnni"), noinline)) void vnni_zmm(long n) {
  __asm__ volatile("1:\n" REP12(VNNI_Z) "dec %0\n jnz 1b\n" : "+r"(n) : : CLOBBER_Y, "cc");
}

struct Seq {
  const char* name;
  const char* what;
  int macs_per_step;  // per accumulator step
  bool supported;
  void (*fn)(long);
  const char* base;  // the fp32 sequence of the same width
  double gmacs = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const bool json = argc > 1 && std::strcmp(argv[1], "--json") == 0;
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx512vnni = avx512 && __builtin_cpu_supports("avx512vnni");
  unsigned a = 0, b = 0, c = 0, d = 0;  // AVX-VNNI: CPUID.(7,1):EAX bit 4
  __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
  const bool avxvnni = avx2 && (a & (1u << 4));
  Seq seqs[] = {{"fp32_ymm", "vfmadd231ps ymm", 8, avx2, fma_ymm, "fp32_ymm"},
                {"int8_exact_ymm", "vpmaddwd + vpaddd (int16 pairs)", 16, avx2, exact_ymm, "fp32_ymm"},
                {"int8_w7_ymm", "vpmaddubsw + vpmaddwd + vpaddd (7-bit weights)", 32, avx2, w7_ymm, "fp32_ymm"},
                {"int8_avxvnni_ymm", "vpdpbusd ymm", 32, avxvnni, vnni_ymm, "fp32_ymm"},
                {"fp32_zmm", "vfmadd231ps zmm", 16, avx512, fma_zmm, "fp32_zmm"},
                {"int8_vnni_zmm", "vpdpbusd zmm", 64, avx512vnni, vnni_zmm, "fp32_zmm"}};
  const long iters = 2000000;
  for (Seq& s : seqs) {
    if (!s.supported) continue;
    double best = 1e30;
    for (int rep = 0; rep < 15; ++rep) {
      const double t0 = cpu_now();
      s.fn(iters);
      const double t = cpu_now() - t0;
      if (t > 0 && t < best) best = t;
    }
    s.gmacs = iters * 12.0 * s.macs_per_step / best / 1e9;
  }
  auto base_of = [&](const Seq& s) {
    for (const Seq& o : seqs)
      if (std::strcmp(o.name, s.base) == 0) return o.gmacs;
    return 0.0;
  };
  if (json) std::printf("{\"sequences\": [");
  bool first = true;
  for (const Seq& s : seqs) {
    if (!s.supported) continue;
    const double base = base_of(s), ratio = base > 0 ? s.gmacs / base : 0;
    if (json) {
      std::printf("%s{\"name\": \"%s\", \"gmacs\": %.2f, \"over_fp32\": %.3f}", first ? "" : ", ", s.name, s.gmacs, ratio);
    } else {
      std::printf("%-18s %-50s %8.1f GMAC/s  %5.2fx %s\n", s.name, s.what, s.gmacs, ratio, s.base);
    }
    first = false;
  }
  if (json) std::printf("]}\n");
  return 0;
}
