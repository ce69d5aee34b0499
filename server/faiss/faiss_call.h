// faiss_call: how the faiss adapter's files call faiss, and the process-wide set-up of faiss and
// BLAS.
//
// CallFaiss turns faiss's exceptions into absl::Status and makes faiss's own long loops
// cancellable through a BuildControl: faiss consults one process-wide InterruptCallback, and
// timbre's asks the BuildControl of the calling thread's CallFaiss, so threads without one (every
// search) are never interrupted. Build steps (calls with a BuildControl) also let BLAS use every
// core while they run; searches keep the single-threaded BLAS of UseSingleThreadedBlas().
//
// Thread-safe.
#ifndef TIMBRE_SERVER_FAISS_FAISS_CALL_H_
#define TIMBRE_SERVER_FAISS_FAISS_CALL_H_

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/faiss/build_control.h"

namespace timbre {

// Runs `call`, code that calls faiss, for the adapter's files.
// While it runs, faiss's own long loops (k-means iterations, exhaustive-search blocks) on this
// thread stop once `control` (may be null: never) is cancelled. Returns OK, BuildCancelledError()
// for an interrupted computation, or a status of `code` whose message is `context`, ": " and
// faiss's (or the standard library's) reason.
absl::Status CallFaiss(absl::string_view context, absl::StatusCode code,
                       const BuildControl* control, absl::FunctionRef<void()> call);

// faiss's version and compile options and the BLAS kernels in use, e.g.
// "faiss 1.7.3 (OPTIMIZE AVX2), OpenBLAS kernels SkylakeX".
std::string FaissBuildInfo();

// Process-wide BLAS set-up: makes BLAS calls single-threaded so that the callers' own threads are
// the only parallelism (gRPC threads x search threads <= cores). Call once at start-up.
void UseSingleThreadedBlas();

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_CALL_H_
