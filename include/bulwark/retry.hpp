// bulwark/retry.hpp — calls again after a transient failure, sleeping an exponential backoff with
// jitter between attempts.
//
//   bulwark::RetryStrategy retry{{.max_attempts = 3, .initial_delay = 100ms}};
//   auto user = retry.execute([&] { return fetch_user(123); });   // up to 3 attempts
//   bulwark::RetryConfig seed_like{.retry_on = bulwark::retry_on_messages({"ECONNRESET", "503"})};
//   bulwark::RetryStrategy<bulwark::ManualClock> tested{seed_like, clock};  // sleeps only recorded
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "clock.hpp"
#include "context.hpp"
#include "detail/stripes.hpp"
#include "detail/validate.hpp"
#include "errors.hpp"
#include "events.hpp"

namespace bulwark {

/// How the delay before each retry grows. Every choice caps its exponential part at max_delay.
enum class Backoff {
  /// The seed's formula: d = min(initial_delay * backoff_multiplier^n, max_delay) before retry
  /// n = 0, 1, ...; sleeps d + d * jitter_factor * U[0, 1), floored to whole ms (so up to
  /// max_delay * (1 + jitter_factor)).
  seed,
  /// "Full jitter" (AWS Architecture Blog, Exponential Backoff And Jitter): sleeps
  /// U[0, min(max_delay, initial_delay * backoff_multiplier^n)), floored. Ignores jitter_factor.
  full_jitter,
  /// "Decorrelated jitter" (same article): sleeps min(max_delay, U[initial_delay, previous * 3)),
  /// floored, where previous is the last backoff delay (initial_delay before the first retry).
  /// Ignores backoff_multiplier and jitter_factor.
  decorrelated_jitter,
};

/// Tuning of a RetryStrategy. Defaults follow the seed's PRODUCTION_RESILIENCE_CONFIG.
struct RetryConfig {
  /// Attempts in all, the first included. At least 1 (1 turns retrying off).
  std::size_t max_attempts = 3;
  /// Base delay before the first retry. Above 0, at most max_delay.
  std::chrono::milliseconds initial_delay{100};
  /// Cap on the backoff delay (before the seed's jitter is added). At most one day.
  std::chrono::milliseconds max_delay{5'000};
  /// Growth of the delay per retry. Finite, at least 1.
  double backoff_multiplier = 2.0;
  /// Share of the delay added as random jitter by Backoff::seed. In [0, 1].
  double jitter_factor = 0.1;
  /// Backoff formula; the seed's by default.
  Backoff backoff = Backoff::seed;
  /// Which exceptions are retried. Empty (the default): every exception except bulwark's own
  /// rejections (bulwark::error and subclasses) and config_error; exceptions not derived from
  /// std::exception are retried too. A custom predicate is asked about every std::exception,
  /// bulwark's included; an exception not derived from std::exception cannot be asked and is
  /// never retried then. Must be safe to call concurrently; an exception it throws replaces the
  /// one it was asked about.
  std::function<bool(const std::exception&)> retry_on{};
  /// Receives retry_scheduled before each sleep (attempt = the attempt that just failed, 1-based;
  /// delay = the sleep about to start) and retry_exhausted when a call's max_attempts-th attempt
  /// failed retryably (attempt = max_attempts), as RetryMetrics::exhausted counts. A call ended
  /// otherwise (a failure not retried, a hint beyond max_delay, the deadline, a stop, the single
  /// attempt of a non-idempotent call when max_attempts > 1) reports nothing more. Empty: no
  /// events are made.
  EventListener on_event{};

  /// Throws config_error naming the first bad field.
  void validate() const;
};

/// A snapshot of a RetryStrategy's counters since construction; may be stale at once.
struct RetryMetrics {
  std::size_t calls = 0;                  ///< execute() calls.
  std::size_t attempts = 0;               ///< Calls of the user's callable (= calls + retries).
  std::size_t retries = 0;                ///< Attempts beyond the first of their call.
  std::size_t successes_after_retry = 0;  ///< Calls that succeeded on attempt 2 or later.
  std::size_t exhausted = 0;              ///< Calls that failed on their max_attempts-th attempt.
};

/// A retry_on predicate that matches, like the seed's retryableErrors, when any of `patterns`
/// (ECMAScript regular expressions, case-insensitive) is found in the exception's what(). Unlike
/// the seed it cannot also match the exception's type name (not available portably). Each pattern
/// is compiled once, here; an invalid one throws config_error naming it. The predicate is
/// thread-safe. Beware that short patterns such as "500" match anywhere in the message.
inline std::function<bool(const std::exception&)> retry_on_messages(
    std::vector<std::string> patterns);

namespace detail {  // defined at the bottom of this file
inline std::chrono::milliseconds retry_hint_of(const std::exception& error) noexcept;
inline std::chrono::milliseconds backoff_delay(const RetryConfig& config, std::size_t retry,
                                               double draw,
                                               std::chrono::milliseconds previous) noexcept;
inline double retry_random_unit() noexcept;
inline void seed_retry_random(std::uint64_t seed) noexcept;
}  // namespace detail

/// Runs a callable, and runs it again after a retryable failure (an exception retry_on accepts, or
/// a value failure_traits marks failed), sleeping a backoff delay through the clock in between.
/// When attempts run out the last exception is rethrown as it was, or the last failed value
/// returned. A first-attempt success costs one count in the calling thread's own stripe: no
/// locked instruction, allocation, clock read or random draw. Jitter comes from a per-thread
/// source (see seed_random). Thread-safe: execute() and metrics() may be called concurrently.
/// Movable; a moved-from strategy may only be destroyed or assigned.
template <class Clock = SteadyClock>
class RetryStrategy {
 public:
  /// Validates `config` (config_error on a bad field); sleeps and reads the time through `clock`.
  explicit RetryStrategy(RetryConfig config = {}, Clock clock = {})
      : config_((config.validate(), std::move(config))),
        clock_(std::move(clock)),
        state_(std::make_unique<State>()) {}

  /// Calls `f` (as f(ctx) when it takes a Context, else f()) until it succeeds, a failure is not
  /// retryable, attempts run out, the next sleep would reach ctx.deadline, or a retry_hint asks for
  /// more than max_delay; then returns its value or rethrows its exception unchanged. Throws
  /// cancelled_error when ctx.stop fires before or during a sleep. ctx.idempotent == false: one
  /// attempt only.
  template <class F>
  detail::context_call_result_t<F> execute(const Context& ctx, F&& f);

  /// Same as execute(Context{}, f).
  template <class F>
  decltype(auto) execute(F&& f) {
    return execute(Context{}, std::forward<F>(f));
  }

  /// Counters since construction.
  [[nodiscard]] RetryMetrics metrics() const noexcept;

  /// The validated configuration.
  [[nodiscard]] const RetryConfig& config() const noexcept { return config_; }

  /// Reseeds the calling thread's jitter source, shared by every RetryStrategy on that thread, so
  /// that the delays it draws afterwards repeat exactly (for tests). Each thread is otherwise
  /// seeded differently on its first retry.
  static void seed_random(std::uint64_t seed) noexcept { detail::seed_retry_random(seed); }

 private:
  // One call, after attempt k of it (limit = max_attempts, or 1 when !ctx.idempotent):
  //   success (no exception, value not failed) ------------------> return it
  //   exception retry_on rejects ---------------------------------> rethrow it
  //   k == limit -------------------------------------------------> rethrow / return the value
  //   ctx.stop already fired -------------------------------------> cancelled_error
  //   retry_hint above max_delay ---------------------------------> rethrow it
  //   delay = max(backoff(k - 1, draw), hint);
  //     now + delay >= ctx.deadline ------------------------------> rethrow / return the value
  //   sleep(delay) ended by ctx.stop -----------------------------> cancelled_error
  //   sleep(delay) -----------------------------------------------> attempt k + 1
  // Only the first line runs on the success path: the random draw, the clock and the dynamic_casts
  // all come after a failure, and the clock is read only when ctx has a deadline. Events (with a
  // listener set): retry_scheduled just before sleep(delay), retry_exhausted when k == limit ==
  // max_attempts; the strategy holds no lock, so every event is made outside one.
  static_assert(std::is_same_v<typename Clock::time_point, SteadyClock::time_point>,
                "RetryStrategy: Clock::time_point must be SteadyClock's, so that Context::deadline "
                "compares with Clock::now()");

  // Counters in one allocation, so the strategy stays movable. All relaxed: they are statistics
  // and order nothing. `calls` is the success path's only cost, so it is striped: each thread adds
  // to its own cache line with a plain load and store (detail::StripeRegistry hands out the
  // stripes; threads beyond the owned ones share the last few with fetch_add), never a locked
  // read-modify-write on a line every thread writes. metrics() sums the stripes. 1.3 KiB.
  struct alignas(64) CallStripe {
    std::atomic<std::size_t> calls{0};
  };
  struct State {
    std::array<CallStripe, detail::StripeRegistry::owned + detail::StripeRegistry::shared> calls;
    std::atomic<std::size_t> retries{0};
    std::atomic<std::size_t> successes_after_retry{0};
    std::atomic<std::size_t> exhausted{0};
  };

  void count_call() noexcept;
  bool retryable(const std::exception* error) const;
  bool sleep_before_retry(const Context& ctx, std::size_t attempt, std::size_t limit,
                          std::chrono::milliseconds hint, std::chrono::milliseconds& previous);

  RetryConfig config_;
  Clock clock_;
  std::unique_ptr<State> state_;
};

// ---------------------------------------------------------------------------------------------
// Definitions.

inline void RetryConfig::validate() const {
  constexpr std::chrono::milliseconds one_day{24 * 60 * 60 * 1000};
  detail::require(max_attempts >= 1, "RetryConfig", "max_attempts", "must be at least 1",
                  max_attempts);
  detail::require(initial_delay.count() > 0, "RetryConfig", "initial_delay", "must be above 0",
                  initial_delay);
  detail::require(max_delay <= one_day, "RetryConfig", "max_delay",
                  "must be at most one day (86400000ms)", max_delay);
  detail::require(initial_delay <= max_delay, "RetryConfig", "initial_delay",
                  "must be at most max_delay (" + detail::describe_value(max_delay) + ")",
                  initial_delay);
  detail::require(std::isfinite(backoff_multiplier) && backoff_multiplier >= 1.0, "RetryConfig",
                  "backoff_multiplier", "must be finite and at least 1", backoff_multiplier);
  detail::require(jitter_factor >= 0.0 && jitter_factor <= 1.0, "RetryConfig", "jitter_factor",
                  "must be in [0, 1]", jitter_factor);
  detail::require(backoff == Backoff::seed || backoff == Backoff::full_jitter ||
                      backoff == Backoff::decorrelated_jitter,
                  "RetryConfig", "backoff", "must be seed, full_jitter or decorrelated_jitter",
                  static_cast<int>(backoff));
}

inline std::function<bool(const std::exception&)> retry_on_messages(
    std::vector<std::string> patterns) {
  std::vector<std::regex> compiled;
  compiled.reserve(patterns.size());
  for (const std::string& pattern : patterns) {
    try {
      compiled.emplace_back(pattern, std::regex::ECMAScript | std::regex::icase);
    } catch (const std::regex_error&) {
      throw config_error("retry_on_messages: pattern \"" + pattern +
                         "\" is not a valid ECMAScript regular expression");
    }
  }
  auto shared = std::make_shared<const std::vector<std::regex>>(std::move(compiled));
  return [shared = std::move(shared)](const std::exception& error) {
    const char* message = error.what();
    return std::any_of(shared->begin(), shared->end(), [message](const std::regex& regex) {
      return std::regex_search(message, regex);
    });
  };
}

template <class Clock>
template <class F>
detail::context_call_result_t<F> RetryStrategy<Clock>::execute(const Context& ctx, F&& f) {
  using R = detail::context_call_result_t<F>;
  State& state = *state_;
  count_call();
  const std::size_t limit = ctx.idempotent ? config_.max_attempts : 1;
  std::chrono::milliseconds previous = config_.initial_delay;  // for Backoff::decorrelated_jitter
  for (std::size_t attempt = 1;; ++attempt) {
    if constexpr (std::is_void_v<R>) {
      try {
        detail::call_with_context(f, ctx);
      } catch (const std::exception& error) {
        if (!retryable(&error) ||
            !sleep_before_retry(ctx, attempt, limit, detail::retry_hint_of(error), previous)) {
          throw;
        }
        continue;
      } catch (...) {
        if (!retryable(nullptr) || !sleep_before_retry(ctx, attempt, limit, {}, previous)) {
          throw;
        }
        continue;
      }
      if (attempt > 1) state.successes_after_retry.fetch_add(1, std::memory_order_relaxed);
      return;
    } else {
      // A failed value is kept here, outside the try, so that a cancelled_error thrown while
      // sleeping after it is not mistaken for a failure of f.
      using Stored = std::conditional_t<std::is_reference_v<R>, std::remove_reference_t<R>*,
                                        std::remove_const_t<R>>;
      std::optional<Stored> failed;
      try {
        R result = detail::call_with_context(f, ctx);
        if (!failure_traits<std::remove_cvref_t<R>>::is_failure(result)) {
          if (attempt > 1) state.successes_after_retry.fetch_add(1, std::memory_order_relaxed);
          if constexpr (std::is_reference_v<R>) {
            return static_cast<R>(result);
          } else {
            return result;
          }
        }
        if constexpr (std::is_reference_v<R>) {
          failed.emplace(std::addressof(result));
        } else {
          failed.emplace(std::move(result));
        }
      } catch (const std::exception& error) {
        if (!retryable(&error) ||
            !sleep_before_retry(ctx, attempt, limit, detail::retry_hint_of(error), previous)) {
          throw;
        }
        continue;
      } catch (...) {
        if (!retryable(nullptr) || !sleep_before_retry(ctx, attempt, limit, {}, previous)) {
          throw;
        }
        continue;
      }
      if (!sleep_before_retry(ctx, attempt, limit, {}, previous)) {
        if constexpr (std::is_reference_v<R>) {
          return static_cast<R>(**failed);
        } else {
          return std::move(*failed);
        }
      }
    }
  }
}

template <class Clock>
RetryMetrics RetryStrategy<Clock>::metrics() const noexcept {
  // relaxed: a snapshot of independent statistics; attempts is derived, so never below calls.
  RetryMetrics m;
  for (const CallStripe& stripe : state_->calls)
    m.calls += stripe.calls.load(std::memory_order_relaxed);
  m.retries = state_->retries.load(std::memory_order_relaxed);
  m.attempts = m.calls + m.retries;
  m.successes_after_retry = state_->successes_after_retry.load(std::memory_order_relaxed);
  m.exhausted = state_->exhausted.load(std::memory_order_relaxed);
  return m;
}

template <class Clock>
void RetryStrategy<Clock>::count_call() noexcept {
  const std::size_t index = detail::StripeRegistry::this_thread();
  std::atomic<std::size_t>& calls = state_->calls[index].calls;
  // relaxed: a statistic. An owned stripe has this thread as its only writer, so load + store
  // loses nothing; a shared one needs the read-modify-write.
  if (index < detail::StripeRegistry::owned) {
    calls.store(calls.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  } else {
    calls.fetch_add(1, std::memory_order_relaxed);
  }
}

// `error` is null for an exception not derived from std::exception.
template <class Clock>
bool RetryStrategy<Clock>::retryable(const std::exception* error) const {
  if (config_.retry_on) return error != nullptr && config_.retry_on(*error);
  return error == nullptr || (dynamic_cast<const bulwark::error*>(error) == nullptr &&
                              dynamic_cast<const config_error*>(error) == nullptr);
}

// After failed attempt `attempt` of at most `limit`: sleeps and returns true when the call should
// be tried again, returns false when the last failure should stand; throws cancelled_error.
template <class Clock>
bool RetryStrategy<Clock>::sleep_before_retry(const Context& ctx, std::size_t attempt,
                                              std::size_t limit, std::chrono::milliseconds hint,
                                              std::chrono::milliseconds& previous) {
  if (attempt >= limit) {
    if (attempt >= config_.max_attempts) {
      state_->exhausted.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
      detail::emit(config_.on_event, {.type = EventType::retry_exhausted, .attempt = attempt});
    }
    return false;
  }
  if (ctx.stop.stop_requested()) throw cancelled_error();
  if (hint > config_.max_delay) return false;
  const std::chrono::milliseconds backoff =
      detail::backoff_delay(config_, attempt - 1, detail::retry_random_unit(), previous);
  previous = backoff;
  const std::chrono::milliseconds delay = std::max(backoff, hint);
  if (ctx.deadline && clock_.now() + delay >= *ctx.deadline) return false;
  detail::emit(config_.on_event,
               {.type = EventType::retry_scheduled, .delay = delay, .attempt = attempt});
  if (!clock_.sleep_for(delay, ctx.stop)) throw cancelled_error();
  state_->retries.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  return true;
}

namespace detail {

/// The hint of an error that is a retry_hint; zero otherwise.
inline std::chrono::milliseconds retry_hint_of(const std::exception& error) noexcept {
  const auto* hint = dynamic_cast<const retry_hint*>(&error);
  return hint != nullptr ? std::max(hint->retry_after(), std::chrono::milliseconds::zero())
                         : std::chrono::milliseconds::zero();
}

/// The backoff delay before retry `retry` (0 before the second attempt), given a uniform `draw` in
/// [0, 1) and, for decorrelated jitter, the `previous` backoff delay (initial_delay at first).
/// Pure: the same arguments give the same delay. `config` must be valid.
inline std::chrono::milliseconds backoff_delay(const RetryConfig& config, std::size_t retry,
                                               double draw,
                                               std::chrono::milliseconds previous) noexcept {
  const auto initial = static_cast<double>(config.initial_delay.count());
  const auto cap = static_cast<double>(config.max_delay.count());
  // pow may reach infinity for a large retry; min brings it back to the cap.
  const auto capped_exponential = [&] {
    return std::min(initial * std::pow(config.backoff_multiplier, static_cast<double>(retry)), cap);
  };
  double delay = 0.0;
  switch (config.backoff) {
    case Backoff::seed: {
      const double base = capped_exponential();
      delay = base + base * config.jitter_factor * draw;
      break;
    }
    case Backoff::full_jitter:
      delay = draw * capped_exponential();
      break;
    case Backoff::decorrelated_jitter:
      delay =
          std::min(cap, initial + draw * (3.0 * static_cast<double>(previous.count()) - initial));
      break;
  }
  return std::chrono::milliseconds{static_cast<std::chrono::milliseconds::rep>(std::floor(delay))};
}

/// SplitMix64 (Steele, Lea, Flood 2014): 8 bytes of state, one add and a mix per number; plenty
/// for jitter, which needs spread, not secrecy.
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

/// A seed that differs between threads and processes: the time, the thread id and an address.
inline std::uint64_t fresh_retry_seed(const void* salt) noexcept {
  const auto ticks =
      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  const std::uint64_t thread = std::hash<std::thread::id>{}(std::this_thread::get_id());
  const auto address = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(salt));
  return ticks ^ (thread << 1) ^ address;
}

/// The calling thread's jitter source: no lock, no sharing; seeded by fresh_retry_seed at first.
inline SplitMix64& retry_random_engine() noexcept {
  thread_local SplitMix64 engine{fresh_retry_seed(&engine)};
  return engine;
}

/// A uniform draw in [0, 1) from the calling thread's jitter source.
inline double retry_random_unit() noexcept {
  return static_cast<double>(retry_random_engine().next() >> 11) * 0x1.0p-53;
}

/// Reseeds the calling thread's jitter source.
inline void seed_retry_random(std::uint64_t seed) noexcept { retry_random_engine().state = seed; }

}  // namespace detail
}  // namespace bulwark
