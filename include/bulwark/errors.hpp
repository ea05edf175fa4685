// bulwark/errors.hpp — the exceptions bulwark throws, the retry_hint mix-in and failure_traits.
//
// Every rejection a policy makes derives from bulwark::error, so callers can tell "bulwark said no"
// from "the upstream failed" with one catch clause:
//
//   try { pipeline.execute(call_upstream); }
//   catch (const bulwark::circuit_open_error& e) { serve_cached(e.retry_after()); }
//   catch (const bulwark::error& e) { shed_load(e.what()); }
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

namespace bulwark {

/// Mixed into errors that know when trying again makes sense.
class retry_hint {
 public:
  /// How long to wait before trying again; zero when there is no hint.
  [[nodiscard]] virtual std::chrono::milliseconds retry_after() const noexcept = 0;

 protected:
  retry_hint() = default;
  retry_hint(const retry_hint&) = default;
  retry_hint& operator=(const retry_hint&) = default;
  ~retry_hint() = default;
};

/// Base of every rejection made by a bulwark policy (never thrown by the upstream).
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The circuit is open, or half-open with all its probes taken.
class circuit_open_error : public error, public retry_hint {
 public:
  /// `retry_after`: time left until the circuit lets a probe through (zero if unknown).
  explicit circuit_open_error(std::chrono::milliseconds retry_after)
      : error("bulwark: circuit breaker is open; retry after " +
              std::to_string(retry_after.count()) + "ms"),
        retry_after_(retry_after) {}
  /// Time left until the circuit turns half-open.
  [[nodiscard]] std::chrono::milliseconds retry_after() const noexcept override {
    return retry_after_;
  }

 private:
  std::chrono::milliseconds retry_after_;
};

/// Why a bulkhead turned a call away.
enum class BulkheadRejection {
  queue_full,     ///< Every slot taken and the queue full on arrival.
  queue_timeout,  ///< Waited `queue_timeout` in the queue without getting a slot.
};

/// The bulkhead had no slot for the call.
class bulkhead_rejected_error : public error {
 public:
  explicit bulkhead_rejected_error(BulkheadRejection reason)
      : error(reason == BulkheadRejection::queue_full ? "bulwark: bulkhead queue is full"
                                                      : "bulwark: bulkhead queue timeout"),
        reason_(reason) {}
  /// Whether the queue was full or the wait timed out.
  [[nodiscard]] BulkheadRejection reason() const noexcept { return reason_; }

 private:
  BulkheadRejection reason_;
};

/// The rate limiter had no token for the call.
class rate_limited_error : public error, public retry_hint {
 public:
  /// `retry_after`: time until the next token is due.
  explicit rate_limited_error(std::chrono::milliseconds retry_after)
      : error("bulwark: rate limit exceeded; next token in " + std::to_string(retry_after.count()) +
              "ms"),
        retry_after_(retry_after) {}
  /// Time until the next token.
  [[nodiscard]] std::chrono::milliseconds retry_after() const noexcept override {
    return retry_after_;
  }

 private:
  std::chrono::milliseconds retry_after_;
};

/// No pooled connection became free within the pool's `acquire_timeout`.
class pool_exhausted_error : public error {
 public:
  pool_exhausted_error() : error("bulwark: connection pool exhausted (acquire_timeout elapsed)") {}
};

/// The context's stop token fired while the call waited or slept.
class cancelled_error : public error {
 public:
  cancelled_error() : error("bulwark: cancelled") {}
};

/// The context's deadline passed while the call waited.
class deadline_exceeded_error : public error {
 public:
  deadline_exceeded_error() : error("bulwark: deadline exceeded") {}
};

/// A config failed validation; what() names the type, field, rule and bad value.
class config_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Says whether a returned value is a failure (e.g. an HTTP 503 returned as a value).
/// Specialise it for your result type; the primary template says no value is a failure.
template <class T>
struct failure_traits {
  /// True when `value` should count as a failure for the breaker and be retried.
  static bool is_failure(const T& /*value*/) { return false; }
};

}  // namespace bulwark
