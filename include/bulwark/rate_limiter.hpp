// bulwark/rate_limiter.hpp — a token bucket: `max_requests` calls per `window`, up to `burst` at
// once; calls over the rate are rejected, or wait their turn for at most `max_wait`.
//
//   bulwark::RateLimiter limiter{{.max_requests = 50, .window = 60s, .burst = 60}};
//   try {
//     auto user = limiter.execute([&] { return fetch_user(123); });   // the bucket starts full
//   } catch (const bulwark::rate_limited_error& e) {
//     retry_later(e.retry_after());   // time until the next token, in whole milliseconds
//   }
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>

#include "clock.hpp"
#include "context.hpp"
#include "detail/coarse_clock.hpp"
#include "detail/validate.hpp"
#include "detail/wait.hpp"
#include "errors.hpp"
#include "events.hpp"

namespace bulwark {

/// Tuning of a RateLimiter. Defaults follow the seed.
struct RateLimiterConfig {
  std::size_t max_requests = 50;             ///< Tokens added per window. 1 to 2^40.
  std::chrono::milliseconds window{60'000};  ///< Refill period for max_requests. Above zero.
  std::size_t burst = 60;                    ///< Bucket capacity, in tokens. At least 1.
  std::chrono::milliseconds max_wait{0};     ///< Longest wait for a token; 0 rejects at once.
  /// Receives rate_limited (delay: retry_after) and rate_limiter_waited (delay: time waited)
  /// events; empty: none are made, and the take costs one branch more.
  EventListener on_event{};
  void validate() const;  ///< Throws config_error naming the first bad field.
};

/// A snapshot of a rate limiter; may be stale as soon as it is returned.
struct RateLimiterMetrics {
  std::size_t available_tokens = 0;  ///< Whole tokens in the bucket now (floored), 0..max_tokens.
  std::size_t max_tokens = 0;        ///< Bucket capacity: the config's burst.
  double refill_rate = 0.0;          ///< Tokens added per second: max_requests / window.
};

/// Token-bucket limiter. The bucket holds up to `burst` tokens and starts full; it refills
/// continuously at `max_requests` per `window`, in exact integer arithmetic (no drift, however
/// many odd intervals pass). Each call takes one token, kept even when the callable throws.
/// Without a token a call is rejected with rate_limited_error, or, when `max_wait` > 0, waits
/// first come first served for its token, unless that token cannot come within `max_wait` and
/// before the context's deadline, in which case it is rejected at once.
/// Thread-safe: every member may be called concurrently. While nobody waits, a call that finds a
/// token takes it with one clock reading and one atomic compare-exchange, without locking.
template <class Clock = SteadyClock>
class RateLimiter {
  static_assert(std::is_same_v<typename Clock::duration, SteadyClock::duration> &&
                    std::is_same_v<typename Clock::time_point, SteadyClock::time_point>,
                "RateLimiter needs a clock with SteadyClock's duration and time_point");

 public:
  /// Validates `config` (config_error) and starts with a full bucket.
  explicit RateLimiter(RateLimiterConfig config = {}, Clock clock = {});

  /// Takes a token and runs `f` (as f(ctx) or f()), passing its result or exception through
  /// unchanged. Throws rate_limited_error when no token is free and none can be waited for;
  /// while waiting (max_wait > 0) throws cancelled_error when ctx.stop fires, and
  /// deadline_exceeded_error when ctx.deadline has already passed (a wait that could not end
  /// before the deadline is never started: that is a rate_limited_error, at once).
  template <class F>
  requires std::invocable<F&, const Context&> || std::invocable<F&>
  decltype(auto) execute(const Context& ctx, F&& f) {
    if (config_.on_event) {
      acquire_reporting(ctx);
    } else {
      acquire(ctx);
    }
    return detail::call_with_context(f, ctx);
  }

  /// Same as execute(Context{}, f).
  template <class F>
  requires std::invocable<F&, const Context&> || std::invocable<F&>
  decltype(auto) execute(F&& f) { return execute(Context{}, std::forward<F>(f)); }

  /// Tokens in the bucket now, its capacity and its refill rate. Lock-free, except once per
  /// decode horizon (see below), when it takes the mutex.
  [[nodiscard]] RateLimiterMetrics metrics() const noexcept;

  /// Refills the bucket to `burst` tokens at once; waiting callers are served from it first.
  void reset();

  /// The configuration this limiter was built with.
  [[nodiscard]] const RateLimiterConfig& config() const noexcept { return config_; }

 private:
  // The bucket, as GCRA ("virtual scheduling"), in exact integers (detail::TokenArithmetic):
  // time is counted in units, `per_tick` units per clock tick, chosen so that one token
  // (window / max_requests) is exactly `per_token` units. The state is `tat`, the theoretical
  // arrival time: the bucket is full when tat <= now; taking a token sets tat to
  // max(tat, now) + per_token, allowed while that stays <= now + capacity (burst tokens).
  // Tokens in the bucket: floor((capacity - max(tat - now, 0)) / per_token).
  //
  //   open    -- token free (fast path: one CAS on `word`) -------------------> open
  //   open    -- no token, max_wait == 0 ------------------> rate_limited_error, open
  //   open    -- no token, max_wait > 0, mutex: its token can come in time --> queued
  //              (the slow bit is set: every later arrival takes the mutex and queues behind)
  //           -- no token and it cannot come in time ----> rate_limited_error, at once
  //   queued  -- the head's token arrives: the head takes it, leaves ----> queued / open (last)
  //   queued  -- ctx.stop fires --------------------------> cancelled_error, leaves the queue
  //   any     -- the clock passes the decode horizon -----> revalidated under the mutex
  //   any     -- reset() ----------------------------------> tat = now (full)
  //
  // Storage: `word` holds tat modulo 2^63 (bit 63 is the slow bit) and is decoded against the
  // caller's now; that needs tat - now within (-2^62, 2^62). tat never runs more than capacity
  // (<= 2^60 units) ahead of the writer's now, and never falls behind `horizon_start`, the clock
  // reading of the last revalidation. So while now - horizon_start <= horizon (2^60 units' worth
  // of ticks: 36 years when window/max_requests is a whole number of ns, at least 1 ms since
  // max_requests <= 2^40) the word decodes exactly; past that, the caller takes the mutex and
  // revalidates: raise the slow bit (no one else may decode the word now), decode tat against
  // horizon_start, store horizon_start = now (release), store the re-encoded tat and restore the
  // slow bit (release). A fast path reads horizon_start (acquire), then the word (acquire), then
  // the clock: a word newer than its horizon_start comes with a clock reading past the horizon
  // (slow path), and a failed CAS that finds horizon_start moved starts over.
  // Reading the word before the clock also means the word holds no take made after the reading,
  // so "no token" is never decided on a stale reading; a retry after a failed CAS may still grant
  // on its old reading (that only counts less refill), but re-reads the clock to reject.
  //
  // FIFO: while anyone waits the slow bit stays set, so no fast path can take a token; the queue
  // is served head first, and an arrival's token time (its position's token) only moves earlier
  // (waiters ahead leave or take theirs; reset()). A waiter whose token has come but who is not
  // the head yet waits for those ahead, never times out.

  struct Waiter {
    Waiter* prev = nullptr;
    Waiter* next = nullptr;
  };

  struct State;
  class QueueExit;
  using rep = typename Clock::duration::rep;
  using time_point = typename Clock::time_point;

  [[nodiscard]] rep now_ticks() const noexcept { return clock_.now().time_since_epoch().count(); }
  // The take's reading: the coarse clock when it may be used (see coarse_), else now_ticks().
  [[nodiscard]] rep take_ticks() const noexcept {
    if constexpr (std::is_same_v<Clock, SteadyClock>) {
      if (coarse_) return detail::coarse_steady_ticks();
    }
    return now_ticks();
  }
  // Both return 0, or the clock reading (ticks) at which the caller began to wait in the queue.
  rep acquire(const Context& ctx);
  rep acquire_slow(const Context& ctx);
  void acquire_reporting(const Context& ctx);
  // `reading`: a clock reading, in ticks.
  void wait_in_queue_locked(std::unique_lock<std::mutex>& lock, const Context& ctx, rep reading,
                            time_point own_limit, time_point wait_end);
  void refresh_locked(rep reading) const;
  [[nodiscard]] std::uint64_t debt_locked(rep reading) const;
  [[nodiscard]] bool try_take_locked(rep& reading);
  void take_queued_locked(rep reading);
  [[nodiscard]] std::size_t position_locked(const Waiter& waiter) const noexcept;
  [[nodiscard]] rate_limited_error rejection(std::uint64_t wait_ticks) const;

  RateLimiterConfig config_;
  Clock clock_;
  // SteadyClock only: the lock-free take may read the coarse clock (~4 ns, up to one resolution
  // late) instead of steady_clock::now() (~16-21 ns) when that resolution is at most 1/100 of a
  // token's interval (window / max_requests; 1.2 s by default). A late reading only ever counts
  // less refill, except that a take from a full bucket may start the next token's interval up
  // to one resolution early: a token at most 1/100 of an interval early, once per full bucket.
  // A reading that finds no token goes to the slow path, which reads the exact clock.
  bool coarse_ = false;
  std::unique_ptr<State> state_;
};

// ---- definitions -------------------------------------------------------------------------------

inline void RateLimiterConfig::validate() const {
  constexpr const char* type = "RateLimiterConfig";
  detail::require(max_requests >= 1, type, "max_requests", "must be at least 1", max_requests);
  // 2^40: keeps a decode horizon (see RateLimiter) of at least 2^20 ns.
  detail::require(max_requests <= std::size_t{1} << 40, type, "max_requests",
                  "must be at most 1099511627776", max_requests);
  detail::require(window.count() > 0, type, "window", "must be above 0", window);
  // 2^60 ns (36.5 years): the largest window whose arithmetic cannot overflow.
  constexpr std::chrono::milliseconds longest_window{(std::int64_t{1} << 60) / 1'000'000};
  detail::require(window <= longest_window, type, "window",
                  "must be at most " + detail::describe_value(longest_window), window);
  detail::require(burst >= 1, type, "burst", "must be at least 1", burst);
  const auto window_ticks =
      static_cast<std::uint64_t>(std::chrono::duration_cast<SteadyClock::duration>(window).count());
  const std::uint64_t per_token =
      window_ticks / std::gcd(std::uint64_t{max_requests}, window_ticks);
  // (per_token >= 1 as window > 0; the max() only tells static analysers, which miss the throw)
  const std::uint64_t most = (std::uint64_t{1} << 60) / std::max(per_token, std::uint64_t{1});
  detail::require(burst <= most, type, "burst",
                  "must be at most " + std::to_string(most) + " for this max_requests and window",
                  burst);
  detail::require(max_wait.count() >= 0, type, "max_wait", "must not be negative", max_wait);
}

namespace detail {

/// Exact token-bucket arithmetic for RateLimiter (the model is in RateLimiter's comment). With
/// g = gcd(max_requests, window in ticks): per_tick = max_requests / g units per clock tick, and
/// per_token = window_ticks / g units per token, so refill never rounds. Values live modulo 2^63.
/// Cost of a take: one multiply, a few adds and compares; no division.
struct TokenArithmetic {
  static constexpr std::uint64_t slow_bit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t mask = slow_bit - 1;
  static constexpr std::uint64_t negative = std::uint64_t{1} << 62;  // sign bit of a 63-bit value
  static constexpr std::uint64_t span = std::uint64_t{1} << 60;      // units per decode horizon

  std::uint64_t per_tick;   // units per clock tick
  std::uint64_t per_token;  // units per token
  std::uint64_t capacity;   // units the bucket holds: burst * per_token <= span
  std::int64_t horizon;     // ticks a decode stays exact after a revalidation: span / per_tick

  explicit TokenArithmetic(const RateLimiterConfig& config) {
    const auto window_ticks = static_cast<std::uint64_t>(
        std::chrono::duration_cast<SteadyClock::duration>(config.window).count());
    const std::uint64_t g = std::gcd(std::uint64_t{config.max_requests}, window_ticks);
    per_tick = config.max_requests / g;
    per_token = window_ticks / g;
    capacity = config.burst * per_token;
    horizon = static_cast<std::int64_t>(span / per_tick);
  }

  /// The time `ticks` in units, modulo 2^64 (only differences modulo 2^63 are ever used).
  [[nodiscard]] std::uint64_t units(std::int64_t ticks) const noexcept {
    return static_cast<std::uint64_t>(ticks) * per_tick;
  }
  /// max(tat - now, 0) for a stored word whose tat is within (-2^62, 2^62) of `now`.
  [[nodiscard]] static std::uint64_t debt(std::uint64_t word, std::uint64_t now) noexcept {
    const std::uint64_t diff = (word - now) & mask;
    return (diff & negative) != 0 ? 0 : diff;
  }
  /// The word storing tat = now + debt, with the slow bit of `flags`.
  [[nodiscard]] static std::uint64_t encode(std::uint64_t now, std::uint64_t debt,
                                            std::uint64_t flags) noexcept {
    return ((now + debt) & mask) | (flags & slow_bit);
  }
  /// Whole tokens in a bucket owing `debt` units.
  [[nodiscard]] std::uint64_t tokens(std::uint64_t debt) const noexcept {
    return debt >= capacity ? 0 : (capacity - debt) / per_token;
  }
  /// Ticks until `count` tokens are in a bucket owing `debt` units (0: there already);
  /// saturates rather than overflow.
  [[nodiscard]] std::uint64_t ticks_until(std::uint64_t debt, std::uint64_t count) const noexcept {
    std::uint64_t need = 0;
    if (__builtin_mul_overflow(count, per_token, &need) ||
        __builtin_add_overflow(need, debt, &need)) {
      return std::numeric_limits<std::uint64_t>::max();
    }
    if (need <= capacity) return 0;
    const std::uint64_t short_by = need - capacity;
    return short_by / per_tick + (short_by % per_tick != 0 ? 1 : 0);  // rounded up
  }
};

}  // namespace detail

template <class Clock>
struct RateLimiter<Clock>::State {
  State(const RateLimiterConfig& config, std::int64_t now)
      : math(config),
        max_wait_ticks(
            config.max_wait.count() > std::numeric_limits<std::int64_t>::max() / 1'000'000
                ? std::numeric_limits<std::int64_t>::max()
                : std::chrono::duration_cast<typename Clock::duration>(config.max_wait).count()),
        horizon_start(now),
        word(detail::TokenArithmetic::encode(math.units(now), 0, 0)) {}

  // Read by every call and written almost never: constants and horizon_start share a line...
  alignas(64) const detail::TokenArithmetic math;
  const std::int64_t max_wait_ticks;        // config.max_wait in ticks, saturated
  std::atomic<std::int64_t> horizon_start;  // clock reading of the last revalidation
  // ...apart from the word every take writes, so other cores keep the constants cached.
  alignas(64) std::atomic<std::uint64_t> word;  // tat modulo 2^63 | slow bit

  // The slow path, guarded by `mutex` (while it is in use, no fast path writes the word).
  std::mutex mutex;
  std::condition_variable_any changed;  // a waiter left, or reset(): positions and tokens moved
  Waiter* head = nullptr;
  Waiter* tail = nullptr;
  std::size_t waiting = 0;
  std::uint64_t generation = 0;  // bumped with every notify of `changed`
};

// Leaves the queue on every way out of a wait: unlinks the waiter, drops the slow bit after the
// last one, and wakes the rest so they see their new position.
template <class Clock>
class RateLimiter<Clock>::QueueExit {
 public:
  QueueExit(State& state, Waiter& self) noexcept : state_(state), self_(self) {
    self.prev = state.tail;
    (state.tail != nullptr ? state.tail->next : state.head) = &self;
    state.tail = &self;
    ++state.waiting;
  }
  QueueExit(const QueueExit&) = delete;
  QueueExit& operator=(const QueueExit&) = delete;
  ~QueueExit() {
    (self_.prev != nullptr ? self_.prev->next : state_.head) = self_.next;
    (self_.next != nullptr ? self_.next->prev : state_.tail) = self_.prev;
    if (--state_.waiting == 0) {
      // release: fast paths that see the bit gone (acquire) see the tat the queue left.
      state_.word.fetch_and(detail::TokenArithmetic::mask, std::memory_order_release);
    }
    ++state_.generation;
    state_.changed.notify_all();
  }

 private:
  State& state_;
  Waiter& self_;
};

template <class Clock>
RateLimiter<Clock>::RateLimiter(RateLimiterConfig config, Clock clock)
    : config_((config.validate(), std::move(config))), clock_(std::move(clock)) {
  if constexpr (std::is_same_v<Clock, SteadyClock>) {
    const auto interval = std::chrono::duration_cast<std::chrono::nanoseconds>(config_.window) /
                          static_cast<std::chrono::nanoseconds::rep>(config_.max_requests);
    const auto resolution = detail::coarse_steady_resolution();
    coarse_ = resolution <= interval / 100;
  }
  state_ = std::make_unique<State>(config_, now_ticks());
}

template <class Clock>
typename RateLimiter<Clock>::rep RateLimiter<Clock>::acquire(const Context& ctx) {
  State& s = *state_;
  const detail::TokenArithmetic& math = s.math;
  for (;;) {  // each round: a fresh clock reading
    // acquire: pairs with the release store of a revalidation, so the word read next is no
    // older than the one that revalidation wrote.
    const std::int64_t start = s.horizon_start.load(std::memory_order_acquire);
    // acquire: whoever wrote this word read the clock before writing it, so the reading below
    // is no earlier than any reading the word holds takes from: tat - now is decodable, and no
    // token is counted as taken before `now` that was taken after it.
    std::uint64_t word = s.word.load(std::memory_order_acquire);
    const std::int64_t reading = take_ticks();
    if ((word & detail::TokenArithmetic::slow_bit) != 0 || reading - start > math.horizon) break;
    const std::uint64_t now = math.units(reading);
    for (bool fresh = true;; fresh = false) {
      const std::uint64_t debt = detail::TokenArithmetic::debt(word, now);
      if (debt + math.per_token > math.capacity) {
        // After a failed CAS the word may hold takes made after `reading`: only a fresh reading
        // can say there is no token. (Granting on a stale one is safe: it counts less refill.)
        if (!fresh) break;
        // A coarse reading may be up to one resolution late: let the exact clock decide.
        if (s.max_wait_ticks == 0 && !coarse_) throw rejection(math.ticks_until(debt, 1));
        return acquire_slow(ctx);  // max_wait > 0: the slow path decides whether to queue
      }
      // acq_rel: release publishes the new tat to the next taker; acquire pairs with the
      // release of the word's last writer (on failure too: see the next comment).
      if (s.word.compare_exchange_weak(
              word, detail::TokenArithmetic::encode(now, debt + math.per_token, 0),
              std::memory_order_acq_rel, std::memory_order_acquire)) {
        return 0;
      }
      // acquire: a revalidation stores horizon_start before the word just reloaded; if one
      // happened, or the slow bit is up, start over.
      if ((word & detail::TokenArithmetic::slow_bit) != 0 ||
          s.horizon_start.load(std::memory_order_acquire) != start) {
        break;
      }
    }
  }
  return acquire_slow(ctx);
}

template <class Clock>
typename RateLimiter<Clock>::rep RateLimiter<Clock>::acquire_slow(const Context& ctx) {
  State& s = *state_;
  std::unique_lock lock{s.mutex};
  rep reading = 0;
  if (s.head == nullptr) {
    if (try_take_locked(reading)) return 0;
    if (s.max_wait_ticks == 0) throw rejection(s.math.ticks_until(debt_locked(reading), 1));
  }
  // No token for this caller now (or others wait for theirs first): wait, or reject at once.
  if (ctx.stop.stop_requested()) throw cancelled_error();
  // Freeze the bucket for the queue first: from here on only mutex holders take tokens, so the
  // token time computed below is exact. acq_rel: a fast path's CAS now fails; acquire sees the
  // last fast path's tat, and the clock reading below comes after its reading.
  s.word.fetch_or(detail::TokenArithmetic::slow_bit, std::memory_order_acq_rel);
  reading = now_ticks();
  const time_point now{typename Clock::duration{reading}};
  if (ctx.deadline && now >= *ctx.deadline) {
    // release: as in ~QueueExit.
    if (s.head == nullptr)
      s.word.fetch_and(detail::TokenArithmetic::mask, std::memory_order_release);
    throw deadline_exceeded_error();
  }
  const std::uint64_t wait_ticks = s.math.ticks_until(debt_locked(reading), s.waiting + 1);
  if (s.head == nullptr && wait_ticks == 0) {  // a token came in meanwhile
    take_queued_locked(reading);
    // release: as in ~QueueExit.
    s.word.fetch_and(detail::TokenArithmetic::mask, std::memory_order_release);
    return 0;
  }
  const time_point own_limit{typename Clock::duration{
      reading > std::numeric_limits<rep>::max() - s.max_wait_ticks ? std::numeric_limits<rep>::max()
                                                                   : reading + s.max_wait_ticks}};
  const time_point wait_end = detail::wait_deadline(own_limit, ctx);
  if (wait_ticks > static_cast<std::uint64_t>((wait_end - now).count())) {
    // release: as in ~QueueExit.
    if (s.head == nullptr)
      s.word.fetch_and(detail::TokenArithmetic::mask, std::memory_order_release);
    throw rejection(wait_ticks);
  }
  wait_in_queue_locked(lock, ctx, reading, own_limit, wait_end);
  return reading;
}

// acquire() for a limiter with a listener: reports rejections and waits, outside every lock.
template <class Clock>
void RateLimiter<Clock>::acquire_reporting(const Context& ctx) {
  rep waited_since = 0;
  try {
    waited_since = acquire(ctx);
  } catch (const rate_limited_error& e) {
    detail::emit(config_.on_event, {.type = EventType::rate_limited, .delay = e.retry_after()});
    throw;
  }
  if (waited_since != 0) {
    const auto waited = typename Clock::duration{now_ticks() - waited_since};
    detail::emit(config_.on_event, {.type = EventType::rate_limiter_waited, .delay = waited});
  }
}

template <class Clock>
void RateLimiter<Clock>::wait_in_queue_locked(std::unique_lock<std::mutex>& lock,
                                              const Context& ctx, rep reading, time_point own_limit,
                                              time_point wait_end) {
  State& s = *state_;
  Waiter self;
  const QueueExit exit{s, self};
  for (;;) {
    const std::size_t ahead = position_locked(self);
    const std::uint64_t wait_ticks = s.math.ticks_until(debt_locked(reading), ahead + 1);
    if (ahead == 0 && wait_ticks == 0) {
      take_queued_locked(reading);
      return;
    }
    const time_point now{typename Clock::duration{reading}};
    const rep left = (wait_end - now).count();
    if (wait_ticks != 0 && (left < 0 || wait_ticks > static_cast<std::uint64_t>(left))) {
      // Cannot happen while token times only move earlier; kept so no wait outlives its limits.
      detail::throw_if_cancelled_or_past_deadline(ctx, own_limit, now);
      throw rejection(wait_ticks);
    }
    // Its token comes at now + wait_ticks. 0: it has come, and those ahead are taking theirs
    // (each one's exit notifies); look again after a second at the latest.
    const rep until = wait_ticks == 0 ? rep{1'000'000'000} : static_cast<rep>(wait_ticks);
    const time_point wake = now + typename Clock::duration{until};
    const std::uint64_t generation = s.generation;
    const bool moved = detail::wait_until(clock_, s.changed, lock, ctx.stop, wake, [&] {
      return s.generation != generation ||
             (s.head == &self && s.math.tokens(debt_locked(now_ticks())) != 0);
    });
    if (!moved && ctx.stop.stop_requested()) throw cancelled_error();
    reading = now_ticks();
  }
}

template <class Clock>
void RateLimiter<Clock>::refresh_locked(rep reading) const {
  State& s = *state_;
  const detail::TokenArithmetic& math = s.math;
  // relaxed: written only under the mutex, which this thread holds.
  const std::int64_t start = s.horizon_start.load(std::memory_order_relaxed);
  if (reading - start <= math.horizon) return;
  // acq_rel: from here no fast path can change or decode the word (their CAS fails, and they
  // see the bit); acquire sees the last fast path's tat.
  const std::uint64_t word =
      s.word.fetch_or(detail::TokenArithmetic::slow_bit, std::memory_order_acq_rel);
  // tat lies in [start, start + horizon + capacity] units: decode it against start.
  const std::uint64_t since_start = (word - math.units(start)) & detail::TokenArithmetic::mask;
  const auto elapsed = static_cast<std::uint64_t>(reading - start);
  const std::uint64_t debt =
      elapsed > since_start / math.per_tick ? 0 : since_start - elapsed * math.per_tick;
  // release: a fast path that reads this start (acquire) then reads the raised bit or newer.
  s.horizon_start.store(reading, std::memory_order_release);
  // release: a fast path that reads this word (acquire) then reads the clock past start + horizon
  // if it still holds the old start, and leaves for the slow path.
  // The slow bit goes back to what it was: set while anyone waits or a caller froze the bucket.
  s.word.store(detail::TokenArithmetic::encode(math.units(reading), debt, word),
               std::memory_order_release);
}

template <class Clock>
std::uint64_t RateLimiter<Clock>::debt_locked(rep reading) const {
  refresh_locked(reading);
  // acquire: sees the tat of the last fast path (which may still run while the slow bit is off).
  return detail::TokenArithmetic::debt(state_->word.load(std::memory_order_acquire),
                                       state_->math.units(reading));
}

template <class Clock>
bool RateLimiter<Clock>::try_take_locked(rep& reading) {
  State& s = *state_;
  for (;;) {
    // Nobody is queued, so fast paths may race: the same steps as acquire(), the word before
    // the clock, and a new reading after a failed CAS.
    // acquire: as in acquire().
    std::uint64_t word = s.word.load(std::memory_order_acquire);
    reading = now_ticks();
    // relaxed: written only under the mutex, which this thread holds.
    if (reading - s.horizon_start.load(std::memory_order_relaxed) > s.math.horizon) {
      refresh_locked(reading);
      continue;
    }
    const std::uint64_t now = s.math.units(reading);
    const std::uint64_t debt = detail::TokenArithmetic::debt(word, now);
    if (debt + s.math.per_token > s.math.capacity) return false;
    // acq_rel: as in acquire().
    if (s.word.compare_exchange_weak(
            word, detail::TokenArithmetic::encode(now, debt + s.math.per_token, word),
            std::memory_order_acq_rel, std::memory_order_relaxed)) {
      return true;
    }
  }
}

template <class Clock>
void RateLimiter<Clock>::take_queued_locked(rep reading) {
  State& s = *state_;
  const std::uint64_t debt = debt_locked(reading);
  // release: the slow bit is set, so only mutex holders write the word; the store publishes
  // the new tat to the fast paths that run once the bit drops.
  s.word.store(detail::TokenArithmetic::encode(s.math.units(reading), debt + s.math.per_token,
                                               detail::TokenArithmetic::slow_bit),
               std::memory_order_release);
}

template <class Clock>
std::size_t RateLimiter<Clock>::position_locked(const Waiter& waiter) const noexcept {
  std::size_t ahead = 0;
  for (const Waiter* w = state_->head; w != &waiter; w = w->next) ++ahead;
  return ahead;
}

template <class Clock>
rate_limited_error RateLimiter<Clock>::rejection(std::uint64_t wait_ticks) const {
  // Whole milliseconds, rounded up, at least 1: trying again sooner would be rejected again.
  constexpr std::uint64_t ticks_per_ms = 1'000'000;
  const std::uint64_t ms = wait_ticks / ticks_per_ms + (wait_ticks % ticks_per_ms != 0 ? 1 : 0);
  constexpr auto most =
      static_cast<std::uint64_t>(std::numeric_limits<std::chrono::milliseconds::rep>::max());
  return rate_limited_error(std::chrono::milliseconds{
      static_cast<std::chrono::milliseconds::rep>(ms == 0 ? 1 : (ms > most ? most : ms))});
}

template <class Clock>
RateLimiterMetrics RateLimiter<Clock>::metrics() const noexcept {
  State& s = *state_;
  // acquire, acquire: as in acquire().
  const std::int64_t start = s.horizon_start.load(std::memory_order_acquire);
  const std::uint64_t word = s.word.load(std::memory_order_acquire);
  const std::int64_t reading = now_ticks();
  std::uint64_t debt = 0;
  if ((word & detail::TokenArithmetic::slow_bit) == 0 && reading - start <= s.math.horizon) {
    debt = detail::TokenArithmetic::debt(word, s.math.units(reading));
  } else {
    const std::scoped_lock lock{s.mutex};
    debt = debt_locked(now_ticks());
  }
  return RateLimiterMetrics{
      .available_tokens = static_cast<std::size_t>(s.math.tokens(debt)),
      .max_tokens = config_.burst,
      .refill_rate = static_cast<double>(config_.max_requests) * 1000.0 /
                     static_cast<double>(config_.window.count()),
  };
}

template <class Clock>
void RateLimiter<Clock>::reset() {
  State& s = *state_;
  const std::scoped_lock lock{s.mutex};
  const rep reading = now_ticks();
  refresh_locked(reading);
  // acquire: as in acquire().
  std::uint64_t word = s.word.load(std::memory_order_acquire);
  // acq_rel, acquire: as in acquire(); tat = now is a full bucket.
  while (!s.word.compare_exchange_weak(
      word, detail::TokenArithmetic::encode(s.math.units(reading), 0, word),
      std::memory_order_acq_rel, std::memory_order_acquire)) {
  }
  ++s.generation;
  s.changed.notify_all();
}

}  // namespace bulwark
