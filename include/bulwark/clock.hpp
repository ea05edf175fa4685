// bulwark/clock.hpp — where policies get the time, sleep and wait: SteadyClock and ManualClock.
//
// Every time-dependent policy takes a Clock. Production code uses SteadyClock; tests use
// ManualClock, whose copies share one virtual time that only moves when the test says so:
//
//   bulwark::ManualClock clock;
//   bulwark::CircuitBreaker<bulwark::ManualClock> breaker{{.open_timeout = 60s}, clock};
//   clock.advance(60s);   // the breaker is half-open now; queued waiters whose time ran out wake
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

namespace bulwark {

/// The real monotonic clock: std::chrono::steady_clock. Stateless and thread-safe.
struct SteadyClock {
  using duration = std::chrono::steady_clock::duration;      ///< Nanoseconds.
  using time_point = std::chrono::steady_clock::time_point;  ///< A point on steady_clock.

  /// The current time.
  [[nodiscard]] time_point now() const noexcept { return std::chrono::steady_clock::now(); }

  /// Sleeps for `how_long`; returns false if `stop` fired first (and returns at once then).
  bool sleep_for(duration how_long, std::stop_token stop = {}) const {
    if (!stop.stop_possible()) {
      std::this_thread::sleep_for(how_long);
      return true;
    }
    std::mutex mutex;
    std::condition_variable_any woken;
    std::unique_lock lock{mutex};
    return !woken.wait_for(lock, stop, how_long, [] { return false; }) && !stop.stop_requested();
  }

  /// Waits on `cv` (with `lock` held) until `ready()`, `stop` fires or `deadline` passes;
  /// returns `ready()`. The building block of every queue in bulwark.
  template <class Lock, class Predicate>
  bool wait_until(std::condition_variable_any& cv, Lock& lock, std::stop_token stop,
                  time_point deadline, Predicate ready) const {
    return cv.wait_until(lock, stop, deadline, ready);
  }
};

/// A clock for tests: virtual time that moves only on advance() or sleep_for().
/// Copies share one time. Thread-safe: every member may be called concurrently.
class ManualClock {
 public:
  using duration = SteadyClock::duration;      ///< Same as SteadyClock's.
  using time_point = SteadyClock::time_point;  ///< Same as SteadyClock's, so deadlines compare.

  /// Starts at a fixed, arbitrary time point (one virtual day after the epoch).
  ManualClock() : state_(std::make_shared<State>()) {}

  /// The current virtual time.
  [[nodiscard]] time_point now() const noexcept {
    // relaxed: the time is a single value; waiters re-read it under the clock's mutex.
    return time_point{duration{state_->ticks.load(std::memory_order_relaxed)}};
  }

  /// Records the sleep, advances virtual time by `how_long` and returns at once;
  /// returns false, without sleeping, when `stop` has already fired.
  bool sleep_for(duration how_long, std::stop_token stop = {}) const {
    if (stop.stop_requested()) return false;
    {
      std::scoped_lock lock{state_->mutex};
      state_->sleeps.push_back(how_long);
    }
    advance(how_long);
    return true;
  }

  /// Moves virtual time forward and wakes every waiter so it can see whether its deadline passed.
  void advance(duration how_long) const {
    std::scoped_lock lock{state_->mutex};
    state_->ticks.fetch_add(std::max(how_long, duration::zero()).count(),
                            std::memory_order_relaxed);
    for (auto* cv : state_->waiters) cv->notify_all();
  }

  /// Every sleep asked for through sleep_for, in order.
  [[nodiscard]] std::vector<duration> sleeps() const {
    std::scoped_lock lock{state_->mutex};
    return state_->sleeps;
  }

  /// Waits on `cv` (with `lock` held) until `ready()`, `stop` fires or virtual time reaches
  /// `deadline`; returns `ready()`. advance() wakes the waiter, with no real-time polling.
  template <class Lock, class Predicate>
  bool wait_until(std::condition_variable_any& cv, Lock& lock, std::stop_token stop,
                  time_point deadline, Predicate ready) const {
    // The caller's lock, then the clock's: advance() changes the time and notifies under the
    // clock's mutex, so no advance can slip between checking the time and starting to wait.
    std::unique_lock clock_lock{state_->mutex};
    state_->waiters.push_back(&cv);
    BothLocks<Lock> both{lock, clock_lock};
    cv.wait(both, stop, [&] { return ready() || now() >= deadline; });
    state_->waiters.erase(std::find(state_->waiters.begin(), state_->waiters.end(), &cv));
    return ready();
  }

 private:
  struct State {
    std::atomic<duration::rep> ticks{
        std::chrono::duration_cast<duration>(std::chrono::hours(24)).count()};
    std::mutex mutex;  // guards sleeps, waiters; orders advance()
    std::vector<duration> sleeps;
    std::vector<std::condition_variable_any*> waiters;  // one entry per wait in progress
  };

  // Locks the caller's lock, then the clock's; unlocks in reverse order.
  template <class Lock>
  struct BothLocks {
    Lock& outer;
    std::unique_lock<std::mutex>& inner;
    void lock() {
      outer.lock();
      inner.lock();
    }
    void unlock() {
      inner.unlock();
      outer.unlock();
    }
  };

  std::shared_ptr<State> state_;
};

}  // namespace bulwark
