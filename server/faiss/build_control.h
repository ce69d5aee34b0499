// BuildControl: how a long build step (k-means, training, adding, query expansion, evaluation)
// reports its progress and learns that its build was cancelled.
//
// A step calls Progress() as it goes and checks cancelled() between units of work (a batch, an
// iteration); once cancelled it stops, leaves nothing behind and returns BuildCancelledError().
// A null BuildControl* means "no reporting, never cancelled".
//
// Implementations must be thread-safe: a step may report from any of its threads.
#ifndef TIMBRE_SERVER_FAISS_BUILD_CONTROL_H_
#define TIMBRE_SERVER_FAISS_BUILD_CONTROL_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace timbre {

class BuildControl {
 public:
  virtual ~BuildControl() = default;

  // True once the build has been cancelled.
  virtual bool cancelled() const = 0;

  // Progress within the current step: `fraction` in [0, 1] and a short human-readable message,
  // e.g. (0.4, "k-means iteration 4 of 10").
  virtual void Progress(double fraction, absl::string_view message) = 0;
};

// The status a step returns when it stopped because its build was cancelled.
inline absl::Status BuildCancelledError() {
  return absl::CancelledError("the build was cancelled");
}

// True if `control` is non-null and cancelled.
inline bool IsCancelled(const BuildControl* control) {
  return control != nullptr && control->cancelled();
}

// Reports progress if `control` is non-null.
inline void ReportProgress(BuildControl* control, double fraction, absl::string_view message) {
  if (control != nullptr) control->Progress(fraction, message);
}

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_BUILD_CONTROL_H_
