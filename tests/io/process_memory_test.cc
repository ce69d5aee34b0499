#include "server/io/process_memory.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

#include "gtest/gtest.h"

namespace timbre {
namespace {

// Blocks the allocator holds in mappings of their own right now.
int MappedBlocks() { return mallinfo2().hblks; }

// Allocates and touches `bytes`, and reports whether the block got a mapping of its own.
bool AllocatedInItsOwnMapping(size_t bytes) {
  const int before = MappedBlocks();
  void* block = std::malloc(bytes);
  std::memset(block, 1, bytes);
  asm volatile("" : : "r"(block) : "memory");  // the compiler may not elide the block
  const bool own = MappedBlocks() > before;
  std::free(block);
  return own;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TIMBRE_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TIMBRE_SANITIZER_ALLOCATOR 1
#endif
#endif

// Each case runs in a child process of its own, whose heap has seen no large block yet.
TEST(ProcessMemoryTest, GlibcAloneServesALargeBlockFromTheHeapAfterALargeFree) {
#ifdef TIMBRE_SANITIZER_ALLOCATOR
  GTEST_SKIP() << "the sanitizers' allocators replace glibc's";
#endif
  EXPECT_EXIT(
      {
        const bool first = AllocatedInItsOwnMapping(4 << 20);
        const bool second = AllocatedInItsOwnMapping(4 << 20);
        std::_Exit(first && !second ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "")
      << "the behaviour the soak found: the freed 4 MB mapping raised the threshold";
}

TEST(ProcessMemoryTest, LargeBlocksKeepTheirOwnMappingsAfterLargeFrees) {
#ifdef TIMBRE_SANITIZER_ALLOCATOR
  GTEST_SKIP() << "the sanitizers' allocators replace glibc's";
#endif
  EXPECT_EXIT(
      {
        bool ok = KeepLargeBlocksInTheirOwnMappings();
        for (int i = 0; i < 3; ++i) {
          ok =
              ok && AllocatedInItsOwnMapping(4 << 20) && AllocatedInItsOwnMapping(kLargeBlockBytes);
        }
        // Small blocks stay in the heap.
        ok = ok && !AllocatedInItsOwnMapping(kLargeBlockBytes / 2);
        std::_Exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace timbre
