// bulwark/detail/wait.hpp — the timed, cancellable wait every queue in bulwark is built on.
//
// Model: a waiter holds its policy's mutex, waits on a condition variable until its predicate
// holds, its stop token fires or the clock reaches a deadline. The clock does the waiting, so
// under ManualClock the wait ends when the test advances virtual time, with no real sleeping.
// Cost: one condition-variable wait; nothing on paths that do not wait.
#pragma once

#include <chrono>
#include <condition_variable>
#include <stop_token>

#include "../context.hpp"
#include "../errors.hpp"

namespace bulwark::detail {

/// Waits until `ready()`, `stop` or `deadline` (on `clock`); returns `ready()`. Uses the clock's
/// own wait_until when it has one; any other clock is polled once a millisecond.
template <class Clock, class Lock, class Predicate>
bool wait_until(const Clock& clock, std::condition_variable_any& cv, Lock& lock,
                std::stop_token stop, typename Clock::time_point deadline, Predicate ready) {
  if constexpr (requires { clock.wait_until(cv, lock, stop, deadline, ready); }) {
    return clock.wait_until(cv, lock, stop, deadline, ready);
  } else {
    while (!ready()) {
      if (stop.stop_requested() || clock.now() >= deadline) return false;
      cv.wait_for(lock, stop, std::chrono::milliseconds(1), ready);
    }
    return true;
  }
}

/// The end of a wait bounded by `own_limit` and the context's deadline, whichever comes first.
template <class TimePoint>
TimePoint wait_deadline(TimePoint own_limit, const Context& ctx) {
  return ctx.deadline && *ctx.deadline < own_limit ? *ctx.deadline : own_limit;
}

/// After a wait that did not get what it waited for: throws cancelled_error when the stop token
/// fired, deadline_exceeded_error when the context's deadline (not the policy's own limit) ended
/// it; returns otherwise, so the policy throws its own timeout error.
template <class TimePoint>
void throw_if_cancelled_or_past_deadline(const Context& ctx, TimePoint own_limit, TimePoint now) {
  if (ctx.stop.stop_requested()) throw cancelled_error();
  if (ctx.deadline && *ctx.deadline <= own_limit && now >= *ctx.deadline) {
    throw deadline_exceeded_error();
  }
}

}  // namespace bulwark::detail
