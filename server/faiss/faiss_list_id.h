// ListId and ListsReadInPlace: reading faiss's inverted lists, shared by the adapter's files that
// walk them (faiss_index.cc, faiss_sq8_scan.cc). Includes faiss headers: only the adapter's files
// include it.
#ifndef TIMBRE_SERVER_FAISS_FAISS_LIST_ID_H_
#define TIMBRE_SERVER_FAISS_FAISS_LIST_ID_H_

#include <cstddef>
#include <cstring>

#include <faiss/Index.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/invlists/OnDiskInvertedLists.h>

namespace timbre {

// The j-th id of an inverted list. A memory-mapped list's ids sit wherever the file put them,
// not always 8-byte aligned, so they are copied out rather than read in place.
inline faiss::Index::idx_t ListId(const faiss::Index::idx_t* ids, size_t j) {
  faiss::Index::idx_t id;
  std::memcpy(&id, reinterpret_cast<const char*>(ids) + j * sizeof(id), sizeof(id));
  return id;
}

// True for lists whose codes and ids stay where they are between accesses (in memory or
// memory-mapped), so that pointers to them can be kept without a copy per access.
inline bool ListsReadInPlace(const faiss::InvertedLists* lists) {
  return dynamic_cast<const faiss::ArrayInvertedLists*>(lists) != nullptr ||
         dynamic_cast<const faiss::OnDiskInvertedLists*>(lists) != nullptr;
}

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_LIST_ID_H_
