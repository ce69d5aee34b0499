#include "server/faiss/faiss_call.h"

#include <algorithm>
#include <exception>
#include <new>
#include <thread>

#include <faiss/Index.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/utils/utils.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

extern "C" {
// OpenBLAS's thread control and kernel name; weak so that another BLAS still links.
void openblas_set_num_threads(int num_threads) __attribute__((weak));
int openblas_get_num_threads() __attribute__((weak));
char* openblas_get_corename() __attribute__((weak));
}

namespace timbre {
namespace {

// ---- Cancellation of faiss's own loops -------------------------------------------------------

// The BuildControl of the build step running faiss code on this thread, if any.
thread_local const BuildControl* current_build_control = nullptr;

// faiss consults one process-wide InterruptCallback from its long loops (k-means iterations,
// exhaustive-search blocks, IVF and HNSW search). timbre's asks the calling thread's BuildControl,
// so threads without one (every search) are never interrupted.
class BuildControlInterrupt final : public faiss::InterruptCallback {
 public:
  bool want_interrupt() override { return IsCancelled(current_build_control); }
};

// Installed once per process, during static initialisation, before any thread can be running
// faiss code that reads the callback. Cost for searches: faiss's IVF search takes the callback's
// mutex once per query to ask it.
[[maybe_unused]] const bool kBuildControlInterruptInstalled = [] {
  faiss::InterruptCallback::instance.reset(new BuildControlInterrupt);
  return true;
}();

// Sets the calling thread's BuildControl for the faiss calls in its scope.
class ScopedBuildControl {
 public:
  explicit ScopedBuildControl(const BuildControl* control)
      : previous_(current_build_control) {
    current_build_control = control;
  }
  ~ScopedBuildControl() { current_build_control = previous_; }
  ScopedBuildControl(const ScopedBuildControl&) = delete;
  ScopedBuildControl& operator=(const ScopedBuildControl&) = delete;

 private:
  const BuildControl* previous_;
};

// faiss's reason without its "Error in <function> at <file>:<line>: " prefixes (nested when
// faiss rethrows an exception from a worker thread) and without the NUL that faiss 1.7.3's
// FaissException leaves at the end of its message.
absl::string_view FaissReason(absl::string_view message) {
  while (!message.empty() && message.back() == '\0') message.remove_suffix(1);
  while (absl::StartsWith(message, "Error in ")) {
    const size_t at = message.find(" at ");
    if (at == absl::string_view::npos) break;
    const size_t colon = message.find(": ", at);
    if (colon == absl::string_view::npos) break;
    message.remove_prefix(colon + 2);
  }
  return message;
}

// Build steps (those with a BuildControl) let BLAS use every core, as RVC's training in Python
// does: k-means spends its time in sgemm. Searches keep the single-threaded BLAS that
// UseSingleThreadedBlas() sets. OpenBLAS's thread count is process-wide, so searches running
// during a build may use more BLAS threads too; builds and searches compete for the cores anyway.
class ScopedBuildBlasThreads {
 public:
  explicit ScopedBuildBlasThreads(bool build)
      : saved_(build && openblas_get_num_threads != nullptr && openblas_set_num_threads != nullptr
                   ? openblas_get_num_threads()
                   : 0) {
    if (saved_ > 0) {
      openblas_set_num_threads(std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
    }
  }
  ~ScopedBuildBlasThreads() {
    if (saved_ > 0) openblas_set_num_threads(saved_);
  }

 private:
  const int saved_;  // 0: left alone
};


}  // namespace

absl::Status CallFaiss(absl::string_view context, absl::StatusCode code,
                       const BuildControl* control, absl::FunctionRef<void()> call) {
  ScopedBuildControl scoped_control(control);
  ScopedBuildBlasThreads blas_threads(control != nullptr);
  try {
    call();
    return absl::OkStatus();
  } catch (const faiss::FaissException& e) {
    if (absl::StrContains(e.msg, "computation interrupted")) return BuildCancelledError();
    return absl::Status(code, absl::StrCat(context, ": ", FaissReason(e.msg)));
  } catch (const std::bad_alloc&) {
    return absl::Status(code, absl::StrCat(context, ": out of memory (corrupt sizes?)"));
  } catch (const std::exception& e) {
    return absl::Status(code, absl::StrCat(context, ": ", e.what()));
  }
}

std::string FaissBuildInfo() {
  std::string info = absl::StrCat("faiss ", FAISS_VERSION_MAJOR, ".", FAISS_VERSION_MINOR, ".",
                                  FAISS_VERSION_PATCH, " (", faiss::get_compile_options(), ")");
  if (openblas_get_corename != nullptr) {
    absl::StrAppend(&info, ", OpenBLAS kernels ", openblas_get_corename());
  }
  return info;
}

void UseSingleThreadedBlas() {
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
}

}  // namespace timbre
