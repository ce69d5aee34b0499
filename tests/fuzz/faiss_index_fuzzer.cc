// A hostile index file through the faiss adapter: arbitrary bytes (seeded with real index files,
// so that mutations reach deep into faiss's reader) loaded as a speaker's index would be. faiss's
// reader is not hardened, so FaissIndex::Load reads each file first in a child process
// (faiss_index_probe.h): whatever the bytes, the load returns an index or a status, and the
// fuzzing process itself never crashes.
#include <cstdint>
#include <cstdlib>

#include "server/faiss/faiss_index.h"
#include "tests/fuzz/fuzz_scratch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      timbre::fuzz::FuzzScratch::Get().WriteFile("input.index", data, size);
  absl::StatusOr<std::unique_ptr<timbre::FaissIndex>> index = timbre::FaissIndex::Load(path);
  if (index.ok() && (*index)->size() < 0) std::abort();
  return 0;
}
