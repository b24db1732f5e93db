#include "kiln/core/cpu_features.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define KILN_X86 1
#endif

namespace kiln {

#ifdef KILN_X86
static uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#ifdef KILN_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  f.sse42 = (c >> 20) & 1;
  bool osxsave = (c >> 27) & 1;
  bool cpu_avx = (c >> 28) & 1;
  bool cpu_fma = (c >> 12) & 1;
  bool cpu_f16c = (c >> 29) & 1;
  uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  bool os_avx = (xcr0 & 0x6) == 0x6;            // XMM and YMM state
  bool os_avx512 = (xcr0 & 0xe6) == 0xe6;       // plus opmask, ZMM_Hi256, Hi16_ZMM
  f.avx = cpu_avx && os_avx;
  f.fma = f.avx && cpu_fma;
  f.f16c = f.avx && cpu_f16c;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = f.avx && ((b >> 5) & 1);
    bool a512 = os_avx512 && f.avx2;
    f.avx512f = a512 && ((b >> 16) & 1);
    f.avx512dq = f.avx512f && ((b >> 17) & 1);
    f.avx512bw = f.avx512f && ((b >> 30) & 1);
    f.avx512vl = f.avx512f && ((b >> 31) & 1);
    f.avx512vnni = f.avx512f && ((c >> 11) & 1);
    f.avx512fp16 = f.avx512f && ((d >> 23) & 1);
    __cpuid_count(7, 1, a, b, c, d);
    f.avxvnni = f.avx2 && ((a >> 4) & 1);
    f.avx512bf16 = f.avx512f && ((a >> 5) & 1);
  }
  char brand[49] = {0};
  if (__get_cpuid_max(0x80000000, nullptr) >= 0x80000004) {
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002 + i, &a, &b, &c, &d);
      std::memcpy(brand + 16 * i + 0, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &c, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
  }
  f.brand = brand;
#ifdef _SC_LEVEL2_CACHE_SIZE
  if (const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE); l2 >= (64 << 10)) f.l2_bytes = l2;
#endif
  while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
  while (!f.brand.empty() && f.brand.front() == ' ') f.brand.erase(f.brand.begin());
#endif
  return f;
}

static void apply_cap(CpuFeatures& f, std::string_view cap) {
  if (cap == "portable") {
    CpuFeatures p;
    p.brand = f.brand;
    p.l2_bytes = f.l2_bytes;
    f = p;
  } else if (cap == "avx2" || cap == "avx2-novnni") {
    f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = false;
    f.avx512vnni = f.avx512bf16 = f.avx512fp16 = false;
    if (cap == "avx2-novnni") f.avxvnni = false;
  }
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f = detect_cpu_features();
    if (const char* cap = std::getenv("KILN_ISA")) apply_cap(f, cap);
    return f;
  }();
  return features;
}

std::string CpuFeatures::summary() const {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(sse42, "sse4.2");
  add(avx, "avx");
  add(avx2, "avx2");
  add(fma, "fma");
  add(f16c, "f16c");
  add(avxvnni, "avx-vnni");
  add(avx512f, "avx512f");
  add(avx512dq, "avx512dq");
  add(avx512bw, "avx512bw");
  add(avx512vl, "avx512vl");
  add(avx512vnni, "avx512vnni");
  add(avx512bf16, "avx512bf16");
  add(avx512fp16, "avx512fp16");
  return s.empty() ? "portable" : s;
}

}  // namespace kiln
