#include "kiln/core/alloc_counter.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <vector>

namespace kiln {
namespace {

TEST(AllocCounter, CountsOperatorNew) {
  uint64_t before = heap_allocation_count();
  auto p = std::make_unique<std::vector<int>>(100);
  EXPECT_GE(heap_allocation_count() - before, 2u);  // the vector object and its buffer
}

TEST(AllocCounter, CountsMallocWhenHooked) {
  if (!heap_counter_covers_malloc()) GTEST_SKIP() << "sanitizer build: malloc is the sanitizer's";
  uint64_t before = heap_allocation_count();
  void* volatile p = std::malloc(64);
  EXPECT_EQ(heap_allocation_count() - before, 1u);
  std::free(p);
}

TEST(AllocCounter, QuietCodeCountsNothing) {
  uint64_t before = heap_allocation_count();
  int a[16];
  for (int i = 0; i < 16; ++i) a[i] = i * i;
  EXPECT_EQ(a[15], 225);
  EXPECT_EQ(heap_allocation_count() - before, 0u);
}

}  // namespace
}  // namespace kiln
