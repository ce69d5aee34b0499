// ThreadSanitizer builds only: makes Debian's abseil synchronization visible to TSan.
//
// Debian's libabsl_synchronization is not compiled with TSan, and absl::Mutex waits on futexes
// directly, so TSan sees no happens-before edge between an Unlock and the next Lock and reports
// every field an absl::Mutex guards as a data race. This file defines the out-of-line methods of
// absl::Mutex, CondVar, Notification, BlockingCounter and Barrier in the test executable, which
// takes precedence over the shared library (ELF symbol interposition, for calls from gRPC too),
// tells TSan about the acquire and release each one implies, and calls the library's own
// implementation (found with dlsym(RTLD_NEXT)). Linked into every executable of a
// TIMBRE_SANITIZE=thread build (CMakeLists.txt); never into a normal build.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/synchronization/barrier.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);

namespace {

#define TIMBRE_STRINGIFY_INNER(x) #x
#define TIMBRE_STRINGIFY(x) TIMBRE_STRINGIFY_INNER(x)

// The library's implementation of the method whose mangled name is
// _ZN[K]4absl<inline namespace><suffix>.
template <typename Fn>
Fn Real(bool is_const, const char* suffix) {
  const std::string ns = TIMBRE_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = std::string(is_const ? "_ZNK4absl" : "_ZN4absl") +
                           std::to_string(ns.size()) + ns + suffix;
  void* symbol = dlsym(RTLD_NEXT, name.c_str());
  if (symbol == nullptr) {
    std::fprintf(stderr, "absl_tsan_annotations: %s not found\n", name.c_str());
    std::abort();
  }
  return reinterpret_cast<Fn>(symbol);
}

void* Address(const void* p) { return const_cast<void*>(p); }

// A condition evaluated with `mu` held, by whichever thread abseil picks (the waiter, or the
// thread releasing the mutex): TSan must see that evaluation inside the critical section too.
struct AnnotatedCondition {
  const absl::Condition* condition;
  absl::Mutex* mu;
};

bool EvalAnnotated(AnnotatedCondition* annotated) {
  __tsan_acquire(annotated->mu);
  const bool result = annotated->condition->Eval();
  __tsan_release(annotated->mu);
  return result;
}

}  // namespace

#define TIMBRE_REAL(is_const, suffix, type) \
  static const auto real = Real<type>(is_const, suffix)

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  TIMBRE_REAL(false, "5Mutex4LockEv", void (*)(Mutex*));
  real(this);
  __tsan_acquire(this);
}

void Mutex::ReaderLock() {
  TIMBRE_REAL(false, "5Mutex10ReaderLockEv", void (*)(Mutex*));
  real(this);
  __tsan_acquire(this);
}

void Mutex::Unlock() {
  TIMBRE_REAL(false, "5Mutex6UnlockEv", void (*)(Mutex*));
  __tsan_release(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  TIMBRE_REAL(false, "5Mutex12ReaderUnlockEv", void (*)(Mutex*));
  __tsan_release(this);
  real(this);
}

bool Mutex::TryLock() {
  TIMBRE_REAL(false, "5Mutex7TryLockEv", bool (*)(Mutex*));
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  TIMBRE_REAL(false, "5Mutex13ReaderTryLockEv", bool (*)(Mutex*));
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

void Mutex::LockWhen(const Condition& cond) {
  TIMBRE_REAL(false, "5Mutex8LockWhenERKNS0_9ConditionE", void (*)(Mutex*, const Condition&));
  AnnotatedCondition annotated{&cond, this};
  real(this, absl::Condition(&EvalAnnotated, &annotated));
  __tsan_acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  TIMBRE_REAL(false, "5Mutex14ReaderLockWhenERKNS0_9ConditionE",
              void (*)(Mutex*, const Condition&));
  AnnotatedCondition annotated{&cond, this};
  real(this, absl::Condition(&EvalAnnotated, &annotated));
  __tsan_acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  TIMBRE_REAL(false, "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
              bool (*)(Mutex*, const Condition&, Duration));
  AnnotatedCondition annotated{&cond, this};
  const bool result = real(this, absl::Condition(&EvalAnnotated, &annotated), timeout);
  __tsan_acquire(this);
  return result;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  TIMBRE_REAL(false, "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE",
              bool (*)(Mutex*, const Condition&, Time));
  AnnotatedCondition annotated{&cond, this};
  const bool result = real(this, absl::Condition(&EvalAnnotated, &annotated), deadline);
  __tsan_acquire(this);
  return result;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  TIMBRE_REAL(false, "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
              bool (*)(Mutex*, const Condition&, Duration));
  AnnotatedCondition annotated{&cond, this};
  const bool result = real(this, absl::Condition(&EvalAnnotated, &annotated), timeout);
  __tsan_acquire(this);
  return result;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  TIMBRE_REAL(false, "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE",
              bool (*)(Mutex*, const Condition&, Time));
  AnnotatedCondition annotated{&cond, this};
  const bool result = real(this, absl::Condition(&EvalAnnotated, &annotated), deadline);
  __tsan_acquire(this);
  return result;
}

// Waiting releases the mutex and takes it again.
void Mutex::Await(const Condition& cond) {
  TIMBRE_REAL(false, "5Mutex5AwaitERKNS0_9ConditionE", void (*)(Mutex*, const Condition&));
  AnnotatedCondition annotated{&cond, this};
  __tsan_release(this);
  real(this, absl::Condition(&EvalAnnotated, &annotated));
  __tsan_acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  TIMBRE_REAL(false, "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE",
              bool (*)(Mutex*, const Condition&, Duration));
  AnnotatedCondition annotated{&cond, this};
  __tsan_release(this);
  const bool result = real(this, absl::Condition(&EvalAnnotated, &annotated), timeout);
  __tsan_acquire(this);
  return result;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  TIMBRE_REAL(false, "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE",
              bool (*)(Mutex*, const Condition&, Time));
  AnnotatedCondition annotated{&cond, this};
  __tsan_release(this);
  const bool result = real(this, absl::Condition(&EvalAnnotated, &annotated), deadline);
  __tsan_acquire(this);
  return result;
}

void CondVar::Wait(Mutex* mu) {
  TIMBRE_REAL(false, "7CondVar4WaitEPNS0_5MutexE", void (*)(CondVar*, Mutex*));
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  TIMBRE_REAL(false, "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE",
              bool (*)(CondVar*, Mutex*, Duration));
  __tsan_release(mu);
  const bool result = real(this, mu, timeout);
  __tsan_acquire(mu);
  return result;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  TIMBRE_REAL(false, "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE",
              bool (*)(CondVar*, Mutex*, Time));
  __tsan_release(mu);
  const bool result = real(this, mu, deadline);
  __tsan_acquire(mu);
  return result;
}

void Notification::Notify() {
  TIMBRE_REAL(false, "12Notification6NotifyEv", void (*)(Notification*));
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  TIMBRE_REAL(true, "12Notification19WaitForNotificationEv", void (*)(const Notification*));
  real(this);
  __tsan_acquire(Address(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  TIMBRE_REAL(true, "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE",
              bool (*)(const Notification*, Duration));
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(Address(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  TIMBRE_REAL(true, "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE",
              bool (*)(const Notification*, Time));
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(Address(this));
  return notified;
}

bool BlockingCounter::DecrementCount() {
  TIMBRE_REAL(false, "15BlockingCounter14DecrementCountEv", bool (*)(BlockingCounter*));
  __tsan_release(this);
  return real(this);
}

void BlockingCounter::Wait() {
  TIMBRE_REAL(false, "15BlockingCounter4WaitEv", void (*)(BlockingCounter*));
  real(this);
  __tsan_acquire(this);
}

bool Barrier::Block() {
  TIMBRE_REAL(false, "7Barrier5BlockEv", bool (*)(Barrier*));
  __tsan_release(this);
  const bool last = real(this);
  __tsan_acquire(this);
  return last;
}

ABSL_NAMESPACE_END
}  // namespace absl
