#include "server/faiss/faiss_call.h"

#include <atomic>
#include <new>
#include <stdexcept>
#include <string>

#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::StartsWith;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;

class FakeControl final : public BuildControl {
 public:
  bool cancelled() const override { return cancelled_; }
  void Progress(double, absl::string_view) override {}
  void Cancel() { cancelled_ = true; }

 private:
  std::atomic<bool> cancelled_{false};
};

TEST(CallFaissTest, CallThatSucceedsIsOk) {
  bool ran = false;
  EXPECT_THAT(CallFaiss("ctx", absl::StatusCode::kInternal, nullptr, [&] { ran = true; }), IsOk());
  EXPECT_TRUE(ran);
}

TEST(CallFaissTest, FaissErrorKeepsItsReasonWithoutLocationPrefixes) {
  // faiss rethrows a worker thread's exception inside another, nesting the prefixes.
  const std::string inner = faiss::FaissException("bad nlist", "void train()", "IVF.cpp", 12).msg;
  const absl::Status status = CallFaiss("training 'IVF4,Flat'", absl::StatusCode::kInvalidArgument,
                                        nullptr, [&] {
                                          throw faiss::FaissException(inner, "void outer()",
                                                                      "Index.cpp", 3);
                                        });
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               ::testing::Eq("training 'IVF4,Flat': bad nlist")));
}

TEST(CallFaissTest, StandardExceptionsBecomeStatusesOfTheGivenCode) {
  EXPECT_THAT(CallFaiss("reading", absl::StatusCode::kInternal, nullptr,
                        [] { throw std::bad_alloc(); }),
              StatusIs(absl::StatusCode::kInternal, ::testing::HasSubstr("reading: out of memory")));
  EXPECT_THAT(CallFaiss("reading", absl::StatusCode::kDataLoss, nullptr,
                        [] { throw std::runtime_error("short read"); }),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::Eq("reading: short read")));
}

TEST(CallFaissTest, CancelledControlInterruptsFaissLoopsOnItsThreadOnly) {
  FakeControl control;
  // faiss's loops ask InterruptCallback::check() between units of work.
  auto faiss_loop = [] { faiss::InterruptCallback::check(); };
  EXPECT_THAT(CallFaiss("k-means", absl::StatusCode::kInternal, &control, faiss_loop), IsOk());
  control.Cancel();
  EXPECT_THAT(CallFaiss("k-means", absl::StatusCode::kInternal, &control, faiss_loop),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  // A call without a control (a search) is never interrupted, even while a build is cancelled.
  EXPECT_THAT(CallFaiss("search", absl::StatusCode::kInternal, nullptr, faiss_loop), IsOk());
  EXPECT_FALSE(faiss::InterruptCallback::is_interrupted());
}

TEST(FaissBuildInfoTest, NamesFaiss) { EXPECT_THAT(FaissBuildInfo(), StartsWith("faiss 1.")); }

}  // namespace
}  // namespace timbre
