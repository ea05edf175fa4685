// bulwark/events.hpp — what policies report as they work, to one listener type for all of them.
//
// Every policy config has an `on_event` field; when it is empty, reporting costs nothing.
//
//   auto log = [](const bulwark::Event& e) { std::clog << bulwark::to_string(e.type) << '\n'; };
//   bulwark::CircuitBreaker breaker{{.on_event = log}};
//   bulwark::RetryStrategy retry{{.on_event = log}};
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string_view>

namespace bulwark {

/// The three states of a circuit breaker.
enum class CircuitState {
  closed,     ///< Calls flow; failures are counted.
  open,       ///< Calls are rejected with circuit_open_error.
  half_open,  ///< A limited number of probe calls test the upstream.
};

/// What happened.
enum class EventType {
  circuit_state_changed,  ///< A breaker moved from `from` to `to`.
  circuit_rejected,       ///< A breaker rejected a call; `delay` = retry_after.
  bulkhead_queued,        ///< A call found every slot taken and joined the queue.
  bulkhead_dequeued,      ///< A queued call got a slot; `delay` = time spent waiting.
  bulkhead_rejected,  ///< A bulkhead rejected a call (queue full or queue timeout); `delay` = time waited.
  rate_limited,         ///< A rate limiter rejected a call; `delay` = time until the next token.
  rate_limiter_waited,  ///< A call waited for a token and got it; `delay` = time spent waiting.
  retry_scheduled,  ///< A retry will follow; `attempt` = the attempt that failed, `delay` = the sleep.
  retry_exhausted,  ///< Every attempt failed; `attempt` = attempts made.
  pool_waited,      ///< A call waited for a pooled connection and got one; `delay` = time waited.
  pool_exhausted,   ///< No pooled connection came within acquire_timeout.
};

/// One report from a policy. Plain data; valid only during the listener call.
struct Event {
  EventType type;                            ///< What happened.
  std::chrono::nanoseconds delay{0};         ///< A wait, sleep or hint, as the type says.
  std::size_t attempt = 0;                   ///< For retry events: the attempt number (1-based).
  CircuitState from = CircuitState::closed;  ///< For circuit_state_changed.
  CircuitState to = CircuitState::closed;    ///< For circuit_state_changed.
};

/// Receives events; called on the thread that caused them, outside every policy lock. Must not
/// throw (an exception from it is swallowed) and should be quick: it runs on the call path.
using EventListener = std::function<void(const Event&)>;

/// The enumerator's name, e.g. "circuit_state_changed".
[[nodiscard]] constexpr std::string_view to_string(EventType type) noexcept {
  switch (type) {
    case EventType::circuit_state_changed:
      return "circuit_state_changed";
    case EventType::circuit_rejected:
      return "circuit_rejected";
    case EventType::bulkhead_queued:
      return "bulkhead_queued";
    case EventType::bulkhead_dequeued:
      return "bulkhead_dequeued";
    case EventType::bulkhead_rejected:
      return "bulkhead_rejected";
    case EventType::rate_limited:
      return "rate_limited";
    case EventType::rate_limiter_waited:
      return "rate_limiter_waited";
    case EventType::retry_scheduled:
      return "retry_scheduled";
    case EventType::retry_exhausted:
      return "retry_exhausted";
    case EventType::pool_waited:
      return "pool_waited";
    case EventType::pool_exhausted:
      return "pool_exhausted";
  }
  return "unknown";
}

/// The state's name: "closed", "open" or "half_open".
[[nodiscard]] constexpr std::string_view to_string(CircuitState state) noexcept {
  switch (state) {
    case CircuitState::closed:
      return "closed";
    case CircuitState::open:
      return "open";
    case CircuitState::half_open:
      return "half_open";
  }
  return "unknown";
}

namespace detail {

/// Reports `event` to `listener` if one is set; swallows what the listener throws.
inline void emit(const EventListener& listener, const Event& event) noexcept {
  if (!listener) return;
  try {
    listener(event);
  } catch (...) {  // documented: a throwing listener cannot break a policy
  }
}

}  // namespace detail
}  // namespace bulwark
