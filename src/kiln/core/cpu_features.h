// kiln/core/cpu_features.h — what this CPU and OS can execute, decided once at start-up.
//
// Instruction-set support needs two checks: CPUID says the core has the instructions, and
// XGETBV says the operating system saves the wider registers on a context switch. Kiln
// enables an ISA only when both agree (MLAS does the same; ggml forgot the OS check).
//
//   const kiln::CpuFeatures& f = kiln::cpu_features();
//   if (f.avx512f) use_avx512_kernels();
//   std::string s = f.summary();                   // "avx2 fma avx512f avx512bw ..."
//
// KILN_ISA=portable|avx2|avx2-novnni|avx512 in the environment caps the level (for tests and
// comparisons): avx2 drops AVX-512 (an Alder Lake-like CPU keeps AVX-VNNI), avx2-novnni also drops
// AVX-VNNI (Haswell to Skylake client, Zen 2 and 3).
#pragma once

#include <string>

namespace kiln {

struct CpuFeatures {
  bool sse42 = false;
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool avx512fp16 = false;
  bool avxvnni = false;
  std::string brand;  // CPU model string from CPUID leaves 0x80000002..4
  // Per-core L2 data cache in bytes (from the C library's cache description; 1 MiB when it
  // cannot tell). The GEMMs keep the weight panels they reuse within half of it.
  long l2_bytes = 1 << 20;

  // Space-separated list of the usable features, e.g. "avx2 fma avx512f avx512vnni".
  std::string summary() const;
};

// Detected on first call (thread-safe), then cached. Honours KILN_ISA.
const CpuFeatures& cpu_features();
// Detection without the KILN_ISA cap.
CpuFeatures detect_cpu_features();

}  // namespace kiln
