#include "kiln/core/alloc_counter.h"

#include <atomic>
#include <cstdlib>
#include <new>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN_NO_MALLOC_HOOK 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define KILN_NO_MALLOC_HOOK 1
#endif

namespace {
std::atomic<uint64_t> g_allocs{0};
inline void bump() { g_allocs.fetch_add(1, std::memory_order_relaxed); }
}  // namespace

namespace kiln {
uint64_t heap_allocation_count() { return g_allocs.load(std::memory_order_relaxed); }
#ifdef KILN_NO_MALLOC_HOOK
bool heap_counter_covers_malloc() { return false; }
#else
bool heap_counter_covers_malloc() { return true; }
#endif
}  // namespace kiln

#ifndef KILN_NO_MALLOC_HOOK
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);

void* malloc(size_t n) {
  bump();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t m) {
  bump();
  return __libc_calloc(n, m);
}
void* realloc(void* p, size_t n) {
  bump();
  return __libc_realloc(p, n);
}
void* aligned_alloc(size_t a, size_t n) {
  bump();
  return __libc_memalign(a, n);
}
void* memalign(size_t a, size_t n) {
  bump();
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
  bump();
  void* p = __libc_memalign(a, n);
  if (!p && n) return 12;  // ENOMEM
  *out = p;
  return 0;
}
void free(void* p) { __libc_free(p); }
}
#define KILN_RAW_ALLOC(n) __libc_malloc(n)
#define KILN_RAW_ALIGNED(a, n) __libc_memalign(a, n)
#define KILN_RAW_FREE(p) __libc_free(p)
#else
#define KILN_RAW_ALLOC(n) std::malloc(n)
#define KILN_RAW_ALIGNED(a, n) std::aligned_alloc(a, ((n) + (a) - 1) / (a) * (a))
#define KILN_RAW_FREE(p) std::free(p)
#endif

static void* counted_new(size_t n) {
  bump();
  void* p = KILN_RAW_ALLOC(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
static void* counted_new_aligned(size_t n, std::align_val_t al) {
  bump();
  void* p = KILN_RAW_ALIGNED(static_cast<size_t>(al), n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}

void* operator new(size_t n) { return counted_new(n); }
void* operator new[](size_t n) { return counted_new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  bump();
  return KILN_RAW_ALLOC(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  bump();
  return KILN_RAW_ALLOC(n ? n : 1);
}
void* operator new(size_t n, std::align_val_t al) { return counted_new_aligned(n, al); }
void* operator new[](size_t n, std::align_val_t al) { return counted_new_aligned(n, al); }
void operator delete(void* p) noexcept { KILN_RAW_FREE(p); }
void operator delete[](void* p) noexcept { KILN_RAW_FREE(p); }
void operator delete(void* p, size_t) noexcept { KILN_RAW_FREE(p); }
void operator delete[](void* p, size_t) noexcept { KILN_RAW_FREE(p); }
void operator delete(void* p, std::align_val_t) noexcept { KILN_RAW_FREE(p); }
void operator delete[](void* p, std::align_val_t) noexcept { KILN_RAW_FREE(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { KILN_RAW_FREE(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { KILN_RAW_FREE(p); }
