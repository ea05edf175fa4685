// bulwark/circuit_breaker.hpp — fails fast while an upstream is failing, probes it, recovers.
//
//   bulwark::CircuitBreaker breaker{{.failure_threshold = 5, .open_timeout = 60s}};
//   try {
//     auto user = breaker.execute([&] { return fetch_user(123); });
//   } catch (const bulwark::circuit_open_error& e) {
//     serve_from_cache(e.retry_after());   // the upstream is not even called
//   }
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include "clock.hpp"
#include "context.hpp"
#include "detail/rolling_window.hpp"
#include "detail/validate.hpp"
#include "errors.hpp"
#include "events.hpp"

namespace bulwark {

/// Tuning of a CircuitBreaker. Defaults follow the seed's PRODUCTION_RESILIENCE_CONFIG.
struct CircuitBreakerConfig {
  /// Failures within monitoring_period that open the circuit. At least 1.
  std::size_t failure_threshold = 5;
  /// Consecutive probe successes in half_open that close the circuit. At least 1.
  std::size_t success_threshold = 2;
  /// How long the circuit stays open before letting probes through (the seed's `timeout`).
  /// Above 0, at most 365 days.
  std::chrono::milliseconds open_timeout{60'000};
  /// Length of the rolling window in which failures are counted. Above 0, at most 365 days.
  std::chrono::milliseconds monitoring_period{120'000};
  /// Probes allowed at once in half_open; 0 means success_threshold.
  std::size_t half_open_max_calls = 0;
  /// Which exceptions count as failures; empty: every exception. An exception it rejects counts
  /// as a success (the upstream answered) and is rethrown all the same. Never asked about
  /// bulwark's own rejections (bulwark::error), which never count.
  std::function<bool(const std::exception&)> is_failure{};
  /// Called as on_state_change(from, to) after every transition, outside the breaker's lock; it
  /// may therefore observe a newer state. Must not throw (an exception from it is swallowed).
  std::function<void(CircuitState, CircuitState)> on_state_change{};
  /// Receives circuit_state_changed and circuit_rejected events; empty: none are made.
  EventListener on_event{};

  /// Throws config_error naming the first bad field.
  void validate() const {
    detail::require(failure_threshold >= 1, "CircuitBreakerConfig", "failure_threshold",
                    "must be at least 1", failure_threshold);
    detail::require(success_threshold >= 1, "CircuitBreakerConfig", "success_threshold",
                    "must be at least 1", success_threshold);
    detail::require(open_timeout.count() > 0, "CircuitBreakerConfig", "open_timeout",
                    "must be above 0", open_timeout);
    detail::require(monitoring_period.count() > 0, "CircuitBreakerConfig", "monitoring_period",
                    "must be above 0", monitoring_period);
    // Beyond a year the arithmetic on clock time points could overflow.
    constexpr std::chrono::milliseconds year{std::chrono::hours{24 * 365}};
    detail::require(open_timeout <= year, "CircuitBreakerConfig", "open_timeout",
                    "must be at most 365 days", open_timeout);
    detail::require(monitoring_period <= year, "CircuitBreakerConfig", "monitoring_period",
                    "must be at most 365 days", monitoring_period);
  }
};

/// A snapshot of a breaker; may be stale as soon as it is returned.
struct CircuitBreakerMetrics {
  CircuitState state =
      CircuitState::closed;              ///< Current state (half_open once open_timeout passed).
  std::size_t failures = 0;              ///< Failures within the rolling window.
  std::size_t successes = 0;             ///< Successes within the rolling window.
  std::size_t consecutive_failures = 0;  ///< Failures since the last success.
  std::size_t consecutive_successes =
      0;  ///< Successes since the last failure (probes in half_open).
  std::optional<SteadyClock::time_point>
      last_failure_time;  ///< When the last failure was recorded.
  SteadyClock::time_point
      last_state_change{};  ///< When the state last changed (construction counts).
};

/// Fails fast while an upstream is failing. Thread-safe: every member may be called
/// concurrently. A closed breaker's success path takes no lock and writes no shared memory.
template <class Clock = SteadyClock>
class CircuitBreaker {
 public:
  /// Validates `config` (config_error) and starts closed.
  explicit CircuitBreaker(CircuitBreakerConfig config = {}, Clock clock = {})
      : core_(std::make_unique<Core>(std::move(config), std::move(clock))) {}

  /// Runs `f` (as f(ctx) or f()) unless the circuit is open, and records its outcome: an
  /// exception (as is_failure decides) or a value failure_traits marks failed is a failure;
  /// bulwark's own rejections are not counted. Throws circuit_open_error when it rejects;
  /// passes f's result or exception through unchanged.
  template <class F>
  decltype(auto) execute(const Context& ctx, F&& f) {
    using R = detail::context_call_result_t<F>;
    Permit permit{*core_};
    try {
      if constexpr (std::is_void_v<R>) {
        detail::call_with_context(f, ctx);
        permit.record(Outcome::success);
      } else {
        R result = detail::call_with_context(f, ctx);
        permit.record(failure_traits<std::remove_cvref_t<R>>::is_failure(result)
                          ? Outcome::failure
                          : Outcome::success);
        if constexpr (std::is_reference_v<R>) {
          return static_cast<R>(result);  // R&& names an lvalue here: forward it as R
        } else {
          return result;
        }
      }
    } catch (const error&) {
      permit.record(Outcome::ignored);  // another policy's rejection says nothing of the upstream
      throw;
    } catch (const std::exception& e) {
      permit.record(core_->counts_as_failure(e) ? Outcome::failure : Outcome::success);
      throw;
    } catch (...) {
      permit.record(Outcome::failure);
      throw;
    }
  }
  /// Same as execute(Context{}, f).
  template <class F>
  decltype(auto) execute(F&& f) {
    return execute(Context{}, std::forward<F>(f));
  }

  /// The current state; an open circuit whose open_timeout has elapsed reports (and becomes) half_open.
  [[nodiscard]] CircuitState state() const { return core_->current_state(); }
  /// A snapshot of counts and times.
  [[nodiscard]] CircuitBreakerMetrics metrics() const { return core_->snapshot(); }
  /// Closes the circuit and forgets every count; also ends isolate().
  void reset() { core_->force(CircuitState::closed, false); }
  /// Opens the circuit and holds it open, whatever the time, until reset().
  void isolate() { core_->force(CircuitState::open, true); }
  /// The validated config.
  [[nodiscard]] const CircuitBreakerConfig& config() const noexcept { return core_->config; }

 private:
  // closed    -- failure_threshold failures within monitoring_period --> open
  // open      -- open_timeout elapsed (>=), seen by any call or query -> half_open
  // half_open -- success_threshold consecutive probe successes -------> closed
  // half_open -- any probe failure -----------------------------------> open
  // half_open -- more than max_probes calls at once: the rest rejected (state unchanged)
  // any       -- isolate() --> open until reset();   reset() --> closed
  //
  // Only closed admits calls without the mutex: its success path reads the state, then adds one
  // to this thread's own stripe of the success window. Failures, probes and every transition
  // take the mutex. Each transition bumps generation, so a probe admitted by an earlier
  // half_open can neither close nor reopen a later one. Entering closed forgets both windows.
  enum class Outcome { success, failure, ignored };
  enum class Admission { closed_call, probe };
  using TimePoint = typename Clock::time_point;
  struct Transition {
    CircuitState from, to;
  };

  struct Core {
    Core(CircuitBreakerConfig c, Clock k)
        : config((c.validate(), std::move(c))),
          clock(std::move(k)),
          shape(std::chrono::duration_cast<std::chrono::nanoseconds>(config.monitoring_period)),
          successes(shape, std::is_same_v<Clock, SteadyClock>),
          failures(shape),
          max_probes(config.half_open_max_calls != 0 ? config.half_open_max_calls
                                                     : config.success_threshold),
          last_state_change(clock.now()) {}

    bool counts_as_failure(const std::exception& e) const {
      return !config.is_failure || config.is_failure(e);
    }

    struct Ticket {
      Admission kind;
      std::uint64_t generation;
    };
    Ticket admit() {
      // acquire: pairs with the release store of a transition to closed (see `state`).
      if (state.load(std::memory_order_acquire) == CircuitState::closed)
        return {Admission::closed_call, 0};
      std::optional<Transition> changed;
      std::chrono::milliseconds retry_after{0};
      Ticket ticket{};
      {
        std::scoped_lock lock{mutex};
        const TimePoint now = clock.now();
        changed = refresh_locked(now);
        switch (state.load(std::memory_order_relaxed)) {
          case CircuitState::closed:
            ticket = {Admission::closed_call, 0};
            break;
          case CircuitState::half_open:
            if (probes_in_flight < max_probes) {
              ++probes_in_flight;
              ticket = {Admission::probe, generation};
              break;
            }
            [[fallthrough]];
          case CircuitState::open:
            retry_after = isolated || now >= open_until
                              ? std::chrono::milliseconds{0}
                              : std::chrono::ceil<std::chrono::milliseconds>(open_until - now);
            ticket = {Admission::probe, rejected_generation};
            break;
        }
      }
      notify(changed);
      if (ticket.generation == rejected_generation) {
        detail::emit(config.on_event, {.type = EventType::circuit_rejected, .delay = retry_after});
        throw circuit_open_error(retry_after);
      }
      return ticket;
    }

    void on_outcome(Ticket ticket, Outcome outcome) {
      if (ticket.kind == Admission::closed_call && outcome != Outcome::failure) {
        if (outcome == Outcome::success) {
          successes.record(successes.coarse_ok() ? detail::SuccessWindow::coarse_ticks()
                                                 : ticks(clock.now()));
          // relaxed: a stale non-zero only costs a lock; a stale zero races with a failure
          // that the failure's own lock orders anyway.
          if (consecutive_failures.load(std::memory_order_relaxed) == 0) return;
          std::scoped_lock lock{mutex};
          consecutive_failures.store(0, std::memory_order_relaxed);
        }
        return;
      }
      std::optional<Transition> changed;
      {
        std::scoped_lock lock{mutex};
        const TimePoint now = clock.now();
        if (ticket.kind == Admission::probe) --probes_in_flight;
        if (outcome == Outcome::success) {
          successes.record(ticks(now));
          consecutive_failures.store(0, std::memory_order_relaxed);
          if (ticket.kind == Admission::probe && ticket.generation == generation &&
              ++probe_successes >= config.success_threshold) {
            changed = transition_locked(CircuitState::closed, now);
          }
        } else if (outcome == Outcome::failure) {
          failures.add(ticks(now));
          last_failure_time = now;
          consecutive_failures.store(consecutive_failures.load(std::memory_order_relaxed) + 1,
                                     std::memory_order_relaxed);
          successes_before_last_failure = successes.total();
          const CircuitState current = state.load(std::memory_order_relaxed);
          const bool probe_failed = current == CircuitState::half_open &&
                                    ticket.kind == Admission::probe &&
                                    ticket.generation == generation;
          const bool threshold_reached = current == CircuitState::closed &&
                                         failures.count(ticks(now)) >= config.failure_threshold;
          if (probe_failed || threshold_reached) {
            changed = transition_locked(CircuitState::open, now);
          }
        }
      }
      notify(changed);
    }

    CircuitState current_state() {
      if (state.load(std::memory_order_acquire) != CircuitState::open)
        return state.load(std::memory_order_relaxed);
      std::optional<Transition> changed;
      CircuitState now_state{};
      {
        std::scoped_lock lock{mutex};
        changed = refresh_locked(clock.now());
        now_state = state.load(std::memory_order_relaxed);
      }
      notify(changed);
      return now_state;
    }

    CircuitBreakerMetrics snapshot() {
      std::optional<Transition> changed;
      CircuitBreakerMetrics m;
      {
        std::scoped_lock lock{mutex};
        const TimePoint now = clock.now();
        changed = refresh_locked(now);
        m.state = state.load(std::memory_order_relaxed);
        m.failures = static_cast<std::size_t>(failures.count(ticks(now)));
        m.successes = static_cast<std::size_t>(successes.count(ticks(now)));
        m.consecutive_failures = consecutive_failures.load(std::memory_order_relaxed);
        m.consecutive_successes =
            m.state == CircuitState::half_open
                ? probe_successes
                : static_cast<std::size_t>(successes.total() - successes_before_last_failure);
        m.last_failure_time = last_failure_time;
        m.last_state_change = last_state_change;
      }
      notify(changed);
      return m;
    }

    void force(CircuitState to, bool isolate) {
      std::optional<Transition> changed;
      {
        std::scoped_lock lock{mutex};
        const TimePoint now = clock.now();
        isolated = isolate;
        changed = transition_locked(to, now);
        if (to == CircuitState::open) open_until = now;  // isolated: never times out
      }
      notify(changed);
    }

    // open -> half_open once open_timeout has elapsed (unless isolated).
    std::optional<Transition> refresh_locked(TimePoint now) {
      if (state.load(std::memory_order_relaxed) == CircuitState::open && !isolated &&
          now >= open_until) {
        return transition_locked(CircuitState::half_open, now);
      }
      return std::nullopt;
    }

    std::optional<Transition> transition_locked(CircuitState to, TimePoint now) {
      const CircuitState from = state.load(std::memory_order_relaxed);
      ++generation;
      last_state_change = now;
      probe_successes = 0;
      switch (to) {
        case CircuitState::open:
          open_until = now + config.open_timeout;
          break;
        case CircuitState::half_open:
          break;
        case CircuitState::closed:
          failures.clear();
          successes.forget();
          successes_before_last_failure = successes.total();
          consecutive_failures.store(0, std::memory_order_relaxed);
          break;
      }
      // release: a lock-free reader that sees `closed` also sees the windows forgotten.
      state.store(to, std::memory_order_release);
      if (from == to) return std::nullopt;
      return Transition{from, to};
    }

    void notify(std::optional<Transition> changed) const {
      if (!changed) return;
      if (config.on_state_change) {
        try {
          config.on_state_change(changed->from, changed->to);
        } catch (...) {  // documented: a throwing listener cannot break the breaker
        }
      }
      detail::emit(
          config.on_event,
          {.type = EventType::circuit_state_changed, .from = changed->from, .to = changed->to});
    }

    static std::int64_t ticks(TimePoint t) noexcept {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    }

    static constexpr std::uint64_t rejected_generation = ~std::uint64_t{0};

    const CircuitBreakerConfig config;
    const Clock clock;
    const detail::WindowShape shape;
    detail::SuccessWindow successes;  // lock-free; forget() under mutex
    detail::FailureWindow failures;   // under mutex
    const std::size_t max_probes;

    std::mutex mutex;
    std::atomic<CircuitState> state{CircuitState::closed};  // written under mutex
    std::atomic<std::size_t> consecutive_failures{0};       // written under mutex
    std::uint64_t generation = 0;
    bool isolated = false;
    TimePoint open_until{};
    TimePoint last_state_change;
    std::optional<TimePoint> last_failure_time;
    std::uint64_t successes_before_last_failure = 0;  // successes.total() then
    std::size_t probes_in_flight = 0;
    std::size_t probe_successes = 0;
  };

  // Admission to one call: records its outcome exactly once; an abandoned probe gives its place back.
  class Permit {
   public:
    explicit Permit(Core& core) : core_(&core), ticket_(core.admit()) {}
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() {
      if (core_ != nullptr && ticket_.kind == Admission::probe)
        core_->on_outcome(ticket_, Outcome::ignored);
    }
    void record(Outcome outcome) {
      if (Core* core = std::exchange(core_, nullptr)) core->on_outcome(ticket_, outcome);
    }

   private:
    Core* core_;
    typename Core::Ticket ticket_;
  };

  std::unique_ptr<Core> core_;
};

}  // namespace bulwark
