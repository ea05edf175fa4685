// bulwark/context.hpp — what travels down a pipeline with each call: cancellation, deadline,
// and whether the call may be repeated.
//
//   std::stop_source cancel;
//   bulwark::Context ctx{.stop = cancel.get_token(), .deadline = bulwark::SteadyClock{}.now() + 2s};
//   auto user = pipeline.execute(ctx, [](const bulwark::Context& c) { return fetch_user(123, c); });
#pragma once

#include <concepts>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "clock.hpp"

namespace bulwark {

/// Per-call data every policy honours. Cheap to copy; default: no stop, no deadline, idempotent.
struct Context {
  /// Fires to cancel waits and retries.
  std::stop_token stop{};
  /// Never wait or sleep past it (compared with the policy's clock).
  std::optional<SteadyClock::time_point> deadline{};
  /// false: not safe to repeat, so a RetryStrategy makes one attempt only.
  bool idempotent = true;
};

namespace detail {

/// Calls `f(ctx)` when f takes the context, else `f()`.
// clang-format off
template <class F>
  requires std::invocable<F&, const Context&> || std::invocable<F&>
// clang-format on
decltype(auto) call_with_context(F& f, const Context& ctx) {
  if constexpr (std::invocable<F&, const Context&>) {
    return f(ctx);
  } else {
    return f();
  }
}

/// The result type of calling `F` through call_with_context.
template <class F>
using context_call_result_t =
    decltype(call_with_context(std::declval<F&>(), std::declval<const Context&>()));

}  // namespace detail
}  // namespace bulwark
