// kiln/core/alloc_counter.h — count heap allocations, to prove a hot path allocates nothing.
//
// Linking the `kiln_alloc_counter` library into an executable replaces the global
// operator new/delete (and, outside sanitizer builds, malloc/calloc/realloc/aligned_alloc)
// with versions that bump one process-wide counter before forwarding to the C library.
// The count covers every thread.
//
//   uint64_t before = kiln::heap_allocation_count();
//   model.run(inputs, outputs);
//   EXPECT_EQ(kiln::heap_allocation_count() - before, 0u);
//
// In a binary that does not link the library, heap_allocation_count() is not defined
// (a link error), so a check can never silently read zero.
#pragma once

#include <cstdint>

namespace kiln {

// Number of heap allocations made by this process so far.
uint64_t heap_allocation_count();
// Whether malloc itself is counted (false in sanitizer builds, where only operator new is).
bool heap_counter_covers_malloc();

}  // namespace kiln
