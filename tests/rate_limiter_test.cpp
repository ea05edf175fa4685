// Tests of bulwark/rate_limiter.hpp: exact refill, rejection and retry_after, metrics, reset, the
// FIFO wait for a token and every way out of it, and concurrent takers.
#include <bulwark/rate_limiter.hpp>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "support/allocations.hpp"

using namespace std::chrono_literals;
using bulwark::Context;
using bulwark::ManualClock;
using bulwark::RateLimiter;
using bulwark::RateLimiterConfig;

namespace {

// ManualClock that also counts the waits the limiter starts, so a test knows a caller is queued
// (it enqueues before its first wait) and can prove that a call never waited. Copies share both.
class ObservedClock {
 public:
  using duration = ManualClock::duration;
  using time_point = ManualClock::time_point;

  [[nodiscard]] time_point now() const noexcept { return manual_.now(); }
  bool sleep_for(duration how_long, std::stop_token stop = {}) const {
    return manual_.sleep_for(how_long, stop);
  }
  void advance(duration how_long) const { manual_.advance(how_long); }

  template <class Lock, class Predicate>
  bool wait_until(std::condition_variable_any& cv, Lock& lock, std::stop_token stop,
                  time_point deadline, Predicate ready) const {
    counts_->started.fetch_add(1);
    counts_->in_progress.fetch_add(1);
    struct Done {
      std::atomic<int>& in_progress;
      ~Done() { in_progress.fetch_sub(1); }
    } done{counts_->in_progress};
    const bool result = manual_.wait_until(cv, lock, std::move(stop), deadline, ready);
    // While held, a woken waiter stays here (with the limiter's lock) until release_waiters().
    std::unique_lock gate{counts_->gate_mutex};
    if (counts_->hold) {
      ++counts_->held;
      counts_->gate.wait_for(gate, 5s, [this] { return !counts_->hold; });
    }
    return result;
  }

  [[nodiscard]] int waiting() const noexcept {
    return counts_->in_progress.load();
  }  ///< Waits in progress.
  [[nodiscard]] int waits_started() const noexcept { return counts_->started.load(); }
  void hold_waiters() const {
    const std::scoped_lock lock{counts_->gate_mutex};
    counts_->hold = true;
  }
  void release_waiters() const {
    {
      const std::scoped_lock lock{counts_->gate_mutex};
      counts_->hold = false;
    }
    counts_->gate.notify_all();
  }
  [[nodiscard]] int held() const {
    const std::scoped_lock lock{counts_->gate_mutex};
    return counts_->held;
  }

 private:
  struct Counts {
    std::atomic<int> in_progress{0};
    std::atomic<int> started{0};
    std::mutex gate_mutex;
    std::condition_variable gate;
    bool hold = false;
    int held = 0;  // waiters that reached the gate while it held
  };
  ManualClock manual_;
  std::shared_ptr<Counts> counts_ = std::make_shared<Counts>();
};

// ManualClock whose next reading by another thread than the arming one stops that thread, after
// the time is read and before it is returned, until release(): a caller preempted between
// reading the clock and taking its token, on demand.
class PausingClock {
 public:
  using duration = ManualClock::duration;
  using time_point = ManualClock::time_point;

  [[nodiscard]] time_point now() const noexcept {
    const time_point reading = manual_.now();
    std::unique_lock lock{gate_->mutex};
    if (gate_->armed && std::this_thread::get_id() != gate_->arming_thread) {
      gate_->armed = false;
      gate_->paused = true;
      gate_->changed.notify_all();
      gate_->changed.wait_for(lock, 5s, [this] { return !gate_->paused; });
    }
    return reading;
  }
  bool sleep_for(duration how_long, std::stop_token stop = {}) const {
    return manual_.sleep_for(how_long, stop);
  }
  void advance(duration how_long) const { manual_.advance(how_long); }

  void pause_next_reader() const {
    const std::scoped_lock lock{gate_->mutex};
    gate_->armed = true;
    gate_->arming_thread = std::this_thread::get_id();
  }
  [[nodiscard]] bool reader_paused() const {
    std::unique_lock lock{gate_->mutex};
    return gate_->changed.wait_for(lock, 5s, [this] { return gate_->paused; });
  }
  void release() const {
    {
      const std::scoped_lock lock{gate_->mutex};
      gate_->paused = false;
    }
    gate_->changed.notify_all();
  }

 private:
  struct Gate {
    std::mutex mutex;
    std::condition_variable changed;
    bool armed = false;
    bool paused = false;
    std::thread::id arming_thread;
  };
  ManualClock manual_;
  std::shared_ptr<Gate> gate_ = std::make_shared<Gate>();
};

// How a call through the limiter ended.
enum class Outcome { ran, rate_limited, cancelled, deadline_exceeded, other };

struct Result {
  Outcome outcome = Outcome::other;
  std::chrono::milliseconds retry_after{-1};  // set for rate_limited
};

template <class Clock>
Result attempt(RateLimiter<Clock>& limiter, const Context& ctx = {},
               const std::function<void()>& body = {}) {
  try {
    limiter.execute(ctx, [&] {
      if (body) body();
    });
    return {Outcome::ran};
  } catch (const bulwark::rate_limited_error& e) {
    return {Outcome::rate_limited, e.retry_after()};
  } catch (const bulwark::cancelled_error&) {
    return {Outcome::cancelled};
  } catch (const bulwark::deadline_exceeded_error&) {
    return {Outcome::deadline_exceeded};
  } catch (...) {
    return {Outcome::other};
  }
}

// Spins (yielding) until pred() holds; gives up after 5 s of real time so a bug fails, not hangs.
template <class Predicate>
bool eventually(Predicate pred) {
  const auto give_up = std::chrono::steady_clock::now() + 5s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

// One call on its own thread, with its own stop source. The destructor cancels a call still
// waiting and joins, so a failing test cannot hang.
template <class Clock>
class Caller {
 public:
  explicit Caller(RateLimiter<Clock>& limiter, std::function<void()> body = {},
                  std::optional<typename Clock::time_point> deadline = {})
      : thread_([this, &limiter, body = std::move(body), deadline] {
          const Context ctx{.stop = stop_.get_token(), .deadline = deadline};
          result_ = attempt(limiter, ctx, body);
          done_.store(true);
        }) {}
  Caller(const Caller&) = delete;
  Caller& operator=(const Caller&) = delete;
  ~Caller() {
    stop_.request_stop();
    thread_.join();
  }

  void cancel() { stop_.request_stop(); }
  [[nodiscard]] bool done() const noexcept { return done_.load(); }
  [[nodiscard]] bool finishes() const {
    return eventually([this] { return done(); });
  }
  [[nodiscard]] Result result() const { return result_; }  // after done()

 private:
  std::stop_source stop_;
  std::atomic<bool> done_{false};
  Result result_;
  std::thread thread_;  // last: starts once the rest exists
};

// A call that must end without waiting: run on a thread, so a wrong wait fails instead of hanging.
template <class Clock>
Result attempt_at_once(RateLimiter<Clock>& limiter,
                       std::optional<typename Clock::time_point> deadline = {}) {
  Caller<Clock> caller{limiter, {}, deadline};
  if (!caller.finishes()) return Result{};  // waited for the clock: Outcome::other
  return caller.result();
}

// Takes every whole token in the bucket; returns how many.
template <class Clock>
std::uint64_t take_all(RateLimiter<Clock>& limiter) {
  const std::size_t available = limiter.metrics().available_tokens;
  for (std::size_t i = 0; i < available; ++i) limiter.execute([] {});
  return available;
}

// A deterministic stream of odd durations (ns) from a seed.
class OddDurations {
 public:
  explicit OddDurations(std::uint64_t seed) : state_(seed) {}
  std::chrono::nanoseconds next(std::uint64_t limit_ns) {
    state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return std::chrono::nanoseconds{static_cast<std::int64_t>(((state_ >> 33) % limit_ns) | 1)};
  }

 private:
  std::uint64_t state_;
};

}  // namespace

TEST_CASE("the bucket starts full: burst calls pass at once, then the next is rejected",
          "[rate_limiter]") {
  ManualClock clock;
  RateLimiter<ManualClock> limiter{{.max_requests = 50, .window = 60s, .burst = 60}, clock};
  for (int i = 0; i < 60; ++i) REQUIRE(attempt(limiter).outcome == Outcome::ran);
  CHECK(attempt(limiter).outcome == Outcome::rate_limited);
  CHECK(limiter.metrics().available_tokens == 0);
}

TEST_CASE("retry_after is the time until the next token, rounded up to whole milliseconds",
          "[rate_limiter]") {
  ManualClock clock;
  SECTION("a token every 1.2 s") {
    RateLimiter<ManualClock> limiter{{.max_requests = 50, .window = 60s, .burst = 2}, clock};
    take_all(limiter);
    CHECK(attempt(limiter).retry_after == 1200ms);
    clock.advance(1ms);
    CHECK(attempt(limiter).retry_after == 1199ms);
    clock.advance(1198ms + 999'999ns);  // 1 ns to go: still at least 1 ms
    CHECK(attempt(limiter).retry_after == 1ms);
    clock.advance(1ns);
    CHECK(attempt(limiter).outcome == Outcome::ran);
  }
  SECTION("a token every 333.33... ms rounds up") {
    RateLimiter<ManualClock> limiter{{.max_requests = 3, .window = 1000ms, .burst = 1}, clock};
    take_all(limiter);
    CHECK(attempt(limiter).retry_after == 334ms);  // 333'333'334 ns
    clock.advance(333'333'333ns);
    CHECK(attempt(limiter).retry_after == 1ms);  // 1 ns to go
    clock.advance(1ns);
    CHECK(attempt(limiter).outcome == Outcome::ran);
    CHECK(attempt(limiter).retry_after == 334ms);  // a full bucket banks no remainder
  }
  SECTION("the rejection's message says it") {
    RateLimiter<ManualClock> limiter{{.max_requests = 1, .window = 2000ms, .burst = 1}, clock};
    take_all(limiter);
    CHECK_THROWS_WITH(limiter.execute([] {}), "bulwark: rate limit exceeded; next token in 2000ms");
  }
}

TEST_CASE("refill is exact over a million odd intervals", "[rate_limiter]") {
  // 7 tokens per 3 ms: a token every 428'571.428... ns, so every refill carries a remainder.
  ManualClock clock;
  RateLimiter<ManualClock> limiter{{.max_requests = 7, .window = 3ms, .burst = 64}, clock};
  REQUIRE(take_all(limiter) == 64);
  OddDurations durations{42};
  std::uint64_t elapsed_ns = 0;
  std::uint64_t granted = 0;
  std::uint64_t mismatches = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    // Mostly 1 ns .. 2 ms (0 to 4 tokens), every 1000th a 13 ms jump (30 tokens).
    const auto step = i % 1000 == 999 ? 13ms + durations.next(1000) : durations.next(2'000'000);
    clock.advance(step);
    elapsed_ns += static_cast<std::uint64_t>(step.count());
    granted += take_all(limiter);
    if (granted != elapsed_ns * 7 / 3'000'000) ++mismatches;
    if (i % 4096 == 0 && attempt(limiter).outcome != Outcome::rate_limited) ++mismatches;
  }
  CHECK(mismatches == 0);
  CHECK(granted == elapsed_ns * 7 / 3'000'000);
}

TEST_CASE("refill stays exact across many decode horizons", "[rate_limiter]") {
  // 100'000'007 (prime) tokens per 100'000 s: a token every 0.99999993 ms. Time is counted in
  // units of 1/100'000'007 ns, so the word decodes against a horizon of only ~11.5 s and the
  // limiter revalidates about a dozen times here, always with a fraction of a token owed.
  ManualClock clock;
  RateLimiter<ManualClock> limiter{
      {.max_requests = 100'000'007, .window = 100'000'000ms, .burst = 10'000}, clock};
  REQUIRE(take_all(limiter) == 10'000);
  OddDurations durations{7};
  std::uint64_t elapsed_ns = 0;
  std::uint64_t granted = 0;
  std::uint64_t mismatches = 0;
  for (int i = 0; i < 200'000; ++i) {
    const auto step = i % 500 == 499 ? 17ms + durations.next(1000) : durations.next(1'400'000);
    clock.advance(step);
    elapsed_ns += static_cast<std::uint64_t>(step.count());
    granted += take_all(limiter);
    // floor(elapsed * 100'000'007 / 10^14) without overflow, with elapsed = q * 10^6 + r:
    // q + floor((r * 10^8 + 7 * elapsed) / 10^14).
    const std::uint64_t q = elapsed_ns / 1'000'000;
    const std::uint64_t r = elapsed_ns % 1'000'000;
    const std::uint64_t expected = q + (r * 100'000'000 + 7 * elapsed_ns) / 100'000'000'000'000ULL;
    if (granted != expected) ++mismatches;
  }
  CHECK(elapsed_ns > 120'000'000'000ULL);  // > 10 horizons
  CHECK(mismatches == 0);
}

TEST_CASE("a bucket left idle for longer than the word can count is full again", "[rate_limiter]") {
  // 4'294'967'291 (prime) tokens per ms: 2^31 + 3 ns is, modulo 2^63 units, only 2^31 - 15
  // units (2'147 tokens) of refill; the limiter must not read it that way.
  ManualClock clock;
  RateLimiter<ManualClock> limiter{{.max_requests = 4'294'967'291, .window = 1ms, .burst = 10'000},
                                   clock};
  REQUIRE(take_all(limiter) == 10'000);
  CHECK(limiter.metrics().available_tokens == 0);
  clock.advance(std::chrono::nanoseconds{(std::int64_t{1} << 31) + 3});
  CHECK(limiter.metrics().available_tokens == 10'000);
  CHECK(take_all(limiter) == 10'000);
  clock.advance(std::chrono::nanoseconds{(std::int64_t{1} << 31) + 3});
  CHECK(attempt(limiter).outcome == Outcome::ran);  // the call path revalidates as well
  CHECK(limiter.metrics().available_tokens == 9'999);
}

TEST_CASE("available_tokens is floored and capped at burst", "[rate_limiter]") {
  ManualClock clock;
  RateLimiter<ManualClock> limiter{{.max_requests = 3, .window = 1000ms, .burst = 5}, clock};
  CHECK(limiter.metrics().available_tokens == 5);
  take_all(limiter);
  CHECK(limiter.metrics().available_tokens == 0);
  clock.advance(500ms);  // 1.5 tokens
  CHECK(limiter.metrics().available_tokens == 1);
  clock.advance(166ms);  // 1.998
  CHECK(limiter.metrics().available_tokens == 1);
  clock.advance(1ms);  // 2.001
  CHECK(limiter.metrics().available_tokens == 2);
  clock.advance(24h);
  CHECK(limiter.metrics().available_tokens == 5);
  CHECK(take_all(limiter) == 5);
  CHECK(attempt(limiter).outcome == Outcome::rate_limited);
}

TEST_CASE("metrics report max_tokens = burst and refill_rate = max_requests per window second",
          "[rate_limiter]") {
  RateLimiter<ManualClock> seed{{}, ManualClock{}};
  CHECK(seed.metrics().max_tokens == 60);
  CHECK(seed.metrics().refill_rate == Approx(50.0 / 60.0));
  RateLimiter<ManualClock> fast{{.max_requests = 250, .window = 500ms, .burst = 7}, ManualClock{}};
  CHECK(fast.metrics().max_tokens == 7);
  CHECK(fast.metrics().refill_rate == Approx(500.0));
}

TEST_CASE("reset() refills the bucket to burst", "[rate_limiter]") {
  ManualClock clock;
  RateLimiter<ManualClock> limiter{{.max_requests = 1, .window = 60s, .burst = 3}, clock};
  take_all(limiter);
  clock.advance(30s);  // half a token owed... and forgotten by reset()
  limiter.reset();
  CHECK(limiter.metrics().available_tokens == 3);
  CHECK(take_all(limiter) == 3);
  CHECK(attempt(limiter).retry_after == 60s);
}

TEST_CASE(
    "results and exceptions of f pass through unchanged, and a throwing call spends its token",
    "[rate_limiter]") {
  struct upstream_error : std::runtime_error {
    explicit upstream_error(int c) : std::runtime_error("upstream"), code(c) {}
    int code;
  };
  ManualClock clock;
  RateLimiter<ManualClock> limiter{{.max_requests = 1, .window = 1000ms, .burst = 3}, clock};
  CHECK(limiter.execute([] { return 42; }) == 42);
  int target = 0;
  int& same = limiter.execute([&]() -> int& { return target; });
  CHECK(&same == &target);
  try {
    limiter.execute([]() -> int { throw upstream_error(7); });
    FAIL("no exception");
  } catch (const upstream_error& e) {
    CHECK(e.code == 7);
  }
  CHECK(limiter.metrics().available_tokens == 0);
}

TEST_CASE("f is given the context when it takes one", "[rate_limiter]") {
  RateLimiter<ManualClock> limiter{{}, ManualClock{}};
  std::stop_source source;
  Context ctx;
  ctx.stop = source.get_token();
  ctx.idempotent = false;
  CHECK(limiter.execute(ctx, [](const Context& c) { return c.idempotent; }) == false);
  CHECK(limiter.execute(ctx, [] { return 5; }) == 5);
}

TEST_CASE("without max_wait the context never matters: a token runs, none is rate_limited",
          "[rate_limiter]") {
  ManualClock clock;
  RateLimiter<ManualClock> limiter{{.max_requests = 1, .window = 1000ms, .burst = 1}, clock};
  std::stop_source stopped;
  stopped.request_stop();
  const Context ctx{.stop = stopped.get_token(), .deadline = clock.now() - 1s};
  CHECK(attempt(limiter, ctx).outcome == Outcome::ran);
  CHECK(attempt(limiter, ctx).outcome == Outcome::rate_limited);
}

TEST_CASE("a taken token costs no allocation", "[rate_limiter]") {
  RateLimiter<ManualClock> limiter{{.max_requests = 10, .window = 1000ms, .burst = 10},
                                   ManualClock{}};
  const bulwark::test::AllocationCounter counter;
  for (int i = 0; i < 5; ++i) limiter.execute([] {});
  CHECK(counter.count() == 0);
}

TEST_CASE("a waiter gets its token when the clock reaches it", "[rate_limiter][threads]") {
  ObservedClock clock;
  RateLimiter<ObservedClock> limiter{
      {.max_requests = 1, .window = 1000ms, .burst = 1, .max_wait = 5s}, clock};
  limiter.execute([] {});
  std::atomic<bool> ran{false};
  Caller<ObservedClock> waiter{limiter, [&] { ran = true; }};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  clock.advance(999ms);
  std::this_thread::sleep_for(2ms);
  CHECK_FALSE(waiter.done());
  clock.advance(1ms);
  REQUIRE(waiter.finishes());
  CHECK(waiter.result().outcome == Outcome::ran);
  CHECK(ran);
  CHECK(limiter.metrics().available_tokens == 0);
}

TEST_CASE("waiters are served first come first served, and an arrival queues behind them",
          "[rate_limiter][threads]") {
  ObservedClock clock;
  RateLimiter<ObservedClock> limiter{
      {.max_requests = 1, .window = 1000ms, .burst = 1, .max_wait = 10s}, clock};
  limiter.execute([] {});  // empty: tokens come at +1 s, +2 s, ...
  std::mutex mutex;
  std::string order;
  auto record = [&](char who) {
    return [&, who] {
      const std::scoped_lock lock{mutex};
      order += who;
    };
  };
  Caller<ObservedClock> a{limiter, record('A')};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  Caller<ObservedClock> b{limiter, record('B')};
  REQUIRE(eventually([&] { return clock.waiting() == 2; }));

  // A third caller's token is the third one (at 3 s): with a 2.5 s deadline it is turned away at
  // once, and told so. Had it been let ahead of A and B, it would say 1000ms (or run).
  const Result third = attempt_at_once(limiter, clock.now() + 2500ms);
  CHECK(third.outcome == Outcome::rate_limited);
  CHECK(third.retry_after == 3000ms);

  clock.advance(1000ms);
  REQUIRE(a.finishes());
  CHECK(a.result().outcome == Outcome::ran);
  {
    const std::scoped_lock lock{mutex};
    CHECK(order == "A");
  }
  // B still owns the next token: an arrival now is behind it (its token at 2 s from now).
  const Result fourth = attempt_at_once(limiter, clock.now() + 1500ms);
  CHECK(fourth.outcome == Outcome::rate_limited);
  CHECK(fourth.retry_after == 2000ms);

  clock.advance(1000ms);
  REQUIRE(b.finishes());
  CHECK(b.result().outcome == Outcome::ran);
  const std::scoped_lock lock{mutex};
  CHECK(order == "AB");
}

TEST_CASE("an arrival never takes a token ahead of a queued waiter", "[rate_limiter][threads]") {
  ObservedClock clock;
  RateLimiter<ObservedClock> limiter{
      {.max_requests = 1, .window = 1000ms, .burst = 1, .max_wait = 10s}, clock};
  limiter.execute([] {});
  std::atomic<int> ran{0};
  Caller<ObservedClock> head{limiter, [&] { ran = 1; }};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  // The token comes, but the waiter, woken, is held before it can take it.
  clock.hold_waiters();
  clock.advance(1000ms);
  REQUIRE(eventually([&] { return clock.held() == 1; }));
  // An arrival now must not take that token: it waits for the limiter instead.
  Caller<ObservedClock> arrival{limiter, [&] { ran = 2; }, clock.now() + 500ms};
  std::this_thread::sleep_for(2ms);
  CHECK_FALSE(arrival.done());
  clock.release_waiters();
  REQUIRE(head.finishes());
  REQUIRE(arrival.finishes());
  CHECK(head.result().outcome == Outcome::ran);
  CHECK(ran == 1);
  CHECK(arrival.result().outcome == Outcome::rate_limited);  // next token in 1 s; deadline in 0.5 s
  CHECK(arrival.result().retry_after == 1000ms);

  // Arriving right as the next token comes, most likely before the head has woken to take it:
  // however the race goes, the arrival's token is the one after the head's.
  Caller<ObservedClock> second{limiter, [&] { ran = 3; }};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  clock.advance(1000ms);
  Context soon;  // on this thread, at once: it is rejected without waiting either way
  soon.deadline = clock.now() + 500ms;
  const Result racer = attempt(limiter, soon);
  CHECK(racer.outcome == Outcome::rate_limited);
  CHECK(racer.retry_after == 1000ms);
  REQUIRE(second.finishes());
  CHECK(ran == 3);
}

TEST_CASE("a call whose token cannot come in time is rejected at once, without waiting",
          "[rate_limiter][threads]") {
  ObservedClock clock;
  SECTION("not within max_wait") {
    RateLimiter<ObservedClock> limiter{
        {.max_requests = 1, .window = 1000ms, .burst = 1, .max_wait = 999ms}, clock};
    limiter.execute([] {});
    const Result r = attempt_at_once(limiter);
    CHECK(r.outcome == Outcome::rate_limited);
    CHECK(r.retry_after == 1000ms);
  }
  SECTION("not before the context's deadline") {
    RateLimiter<ObservedClock> limiter{
        {.max_requests = 1, .window = 1000ms, .burst = 1, .max_wait = 10s}, clock};
    limiter.execute([] {});
    const Result r = attempt_at_once(limiter, clock.now() + 999ms);
    CHECK(r.outcome == Outcome::rate_limited);
    CHECK(r.retry_after == 1000ms);
  }
  CHECK(clock.waits_started() == 0);
}

TEST_CASE("a token that comes exactly at the end of max_wait is waited for",
          "[rate_limiter][threads]") {
  ObservedClock clock;
  RateLimiter<ObservedClock> limiter{
      {.max_requests = 1, .window = 1000ms, .burst = 1, .max_wait = 1000ms}, clock};
  limiter.execute([] {});
  Caller<ObservedClock> waiter{limiter};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  clock.advance(1000ms);
  REQUIRE(waiter.finishes());
  CHECK(waiter.result().outcome == Outcome::ran);
}

TEST_CASE(
    "a stop already requested or a deadline already passed fails at once when a wait is needed",
    "[rate_limiter]") {
  ManualClock clock;
  RateLimiter<ManualClock> limiter{
      {.max_requests = 1, .window = 1000ms, .burst = 1, .max_wait = 10s}, clock};
  limiter.execute([] {});
  std::stop_source stopped;
  stopped.request_stop();
  Context cancelled;
  cancelled.stop = stopped.get_token();
  Context late;
  late.deadline = clock.now();
  CHECK(attempt(limiter, cancelled).outcome == Outcome::cancelled);
  CHECK(attempt(limiter, late).outcome == Outcome::deadline_exceeded);
  clock.advance(1000ms);  // with a token there is nothing to wait for: the call runs
  CHECK(attempt(limiter, cancelled).outcome == Outcome::ran);
}

TEST_CASE("a cancelled waiter leaves with cancelled_error and the next waiter moves up",
          "[rate_limiter][threads]") {
  ObservedClock clock;
  RateLimiter<ObservedClock> limiter{
      {.max_requests = 1, .window = 1000ms, .burst = 1, .max_wait = 10s}, clock};
  limiter.execute([] {});
  Caller<ObservedClock> a{limiter};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  Caller<ObservedClock> b{limiter};
  REQUIRE(eventually([&] { return clock.waiting() == 2; }));
  a.cancel();
  REQUIRE(a.finishes());
  CHECK(a.result().outcome == Outcome::cancelled);
  clock.advance(1000ms);  // A's token, now B's (B was due at 2 s)
  REQUIRE(b.finishes());
  CHECK(b.result().outcome == Outcome::ran);
  // The queue is empty again and so is the bucket: the next token is a whole second away.
  const Result next = attempt_at_once(limiter, clock.now() + 999ms);
  CHECK(next.outcome == Outcome::rate_limited);
  CHECK(next.retry_after == 1000ms);
}

TEST_CASE("reset() serves the waiting callers at once", "[rate_limiter][threads]") {
  ObservedClock clock;
  RateLimiter<ObservedClock> limiter{
      {.max_requests = 1, .window = 60s, .burst = 2, .max_wait = 1000s}, clock};
  limiter.execute([] {});
  limiter.execute([] {});
  Caller<ObservedClock> a{limiter};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  Caller<ObservedClock> b{limiter};
  REQUIRE(eventually([&] { return clock.waiting() == 2; }));
  limiter.reset();
  REQUIRE(a.finishes());
  REQUIRE(b.finishes());
  CHECK(a.result().outcome == Outcome::ran);
  CHECK(b.result().outcome == Outcome::ran);
  CHECK(limiter.metrics().available_tokens == 0);
}

TEST_CASE("queued callers each get exactly one token, one per interval",
          "[rate_limiter][threads]") {
  ObservedClock clock;
  RateLimiter<ObservedClock> limiter{{.max_requests = 1, .window = 1ms, .burst = 1, .max_wait = 1h},
                                     clock};
  limiter.execute([] {});
  constexpr int callers = 8;
  std::atomic<int> ran{0};
  std::list<Caller<ObservedClock>> queue;
  for (int i = 0; i < callers; ++i) {
    queue.emplace_back(limiter, [&] { ++ran; });
    REQUIRE(eventually([&] { return clock.waiting() == i + 1; }));
  }
  for (int i = 1; i <= callers; ++i) {
    clock.advance(1ms);
    REQUIRE(eventually([&] { return ran.load() == i; }));
  }
  for (auto& caller : queue) {
    REQUIRE(caller.finishes());
    CHECK(caller.result().outcome == Outcome::ran);
  }
  CHECK(ran == callers);
}

TEST_CASE("tokens that come together serve every waiter they cover, without another tick",
          "[rate_limiter][threads]") {
  ObservedClock clock;
  RateLimiter<ObservedClock> limiter{{.max_requests = 1, .window = 1ms, .burst = 4, .max_wait = 1h},
                                     clock};
  take_all(limiter);
  constexpr int callers = 4;
  std::atomic<int> ran{0};
  std::list<Caller<ObservedClock>> queue;
  for (int i = 0; i < callers; ++i) {
    queue.emplace_back(limiter, [&] { ++ran; });
    REQUIRE(eventually([&] { return clock.waiting() == i + 1; }));
  }
  clock.advance(4ms);  // four tokens at once: each waiter's exit must wake the next
  for (auto& caller : queue) {
    REQUIRE(caller.finishes());
    CHECK(caller.result().outcome == Outcome::ran);
  }
  CHECK(ran == callers);
  CHECK(limiter.metrics().available_tokens == 0);
}

TEST_CASE("a caller held up after reading the clock is not refused a token that has come since",
          "[rate_limiter][threads]") {
  PausingClock clock;
  RateLimiter<PausingClock> limiter{{.max_requests = 1, .window = 1ms, .burst = 2}, clock};
  clock.pause_next_reader();
  Caller<PausingClock> late{limiter};  // reads the time (full bucket) and stops there
  REQUIRE(clock.reader_paused());
  clock.advance(10ms);
  limiter.execute([] {});  // two takes after its reading: by that reading, the bucket is empty
  limiter.execute([] {});
  clock.advance(10ms);  // full again
  clock.release();      // its CAS fails; a retry on the old reading would see no token
  REQUIRE(late.finishes());
  CHECK(late.result().outcome == Outcome::ran);
  CHECK(limiter.metrics().available_tokens == 1);
}

TEST_CASE("concurrent takers never get more tokens than the clock allows",
          "[rate_limiter][threads]") {
  ManualClock clock;
  RateLimiter<ManualClock> limiter{{.max_requests = 1000, .window = 1000ms, .burst = 2000}, clock};
  constexpr int threads = 4;
  std::atomic<std::uint64_t> granted{0};
  std::atomic<bool> time_stopped{true};
  // Each taker takes until it is rejected after time stopped: then the bucket is empty for good.
  auto taker = [&] {
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < give_up) {
      const bool stopped = time_stopped.load();
      try {
        limiter.execute([] {});
        granted.fetch_add(1);
      } catch (const bulwark::rate_limited_error&) {
        if (stopped) return;
      }
    }
  };
  SECTION("from a full bucket, with the clock standing still") {
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (int i = 0; i < threads; ++i) pool.emplace_back(taker);
    for (auto& t : pool) t.join();
    CHECK(granted == 2000);
  }
  SECTION("from an empty bucket, while the clock moves in odd steps") {
    take_all(limiter);
    time_stopped = false;
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (int i = 0; i < threads; ++i) pool.emplace_back(taker);
    std::uint64_t elapsed_ns = 0;
    OddDurations durations{3};
    for (int i = 0; i < 1500; ++i) {  // ~1500 tokens in all: the bucket (2000) never overflows
      const auto step = durations.next(2'000'000);
      clock.advance(step);
      elapsed_ns += static_cast<std::uint64_t>(step.count());
      if (i % 64 == 0) std::this_thread::yield();
    }
    time_stopped = true;
    for (auto& t : pool) t.join();
    CHECK(granted == elapsed_ns * 1000 / 1'000'000'000);
  }
}

TEST_CASE("every bad config is a config_error naming the field", "[rate_limiter]") {
  auto message = [](RateLimiterConfig config) -> std::string {
    try {
      RateLimiter<ManualClock> limiter{config, ManualClock{}};
    } catch (const bulwark::config_error& e) {
      return e.what();
    }
    return "accepted";
  };
  CHECK(message({.max_requests = 0}) == "RateLimiterConfig.max_requests must be at least 1, got 0");
  CHECK(message({.max_requests = (std::size_t{1} << 40) + 1}) ==
        "RateLimiterConfig.max_requests must be at most 1099511627776, got 1099511627777");
  CHECK(message({.max_requests = std::size_t{1} << 40, .window = 1000ms}) == "accepted");
  CHECK(message({.window = 0ms}) == "RateLimiterConfig.window must be above 0, got 0ms");
  CHECK(message({.window = -5ms}) == "RateLimiterConfig.window must be above 0, got -5ms");
  CHECK(message({.window = 1'152'921'504'607ms}) ==
        "RateLimiterConfig.window must be at most 1152921504606ms, got 1152921504607ms");
  CHECK(message({.burst = 0}) == "RateLimiterConfig.burst must be at least 1, got 0");
  CHECK(message({.max_requests = 1, .window = 60s, .burst = 19'215'359}) ==
        "RateLimiterConfig.burst must be at most 19215358 for this max_requests and window, got "
        "19215359");
  CHECK(message({.max_requests = 1, .window = 60s, .burst = 19'215'358}) == "accepted");
  CHECK(message({.max_wait = -1ms}) == "RateLimiterConfig.max_wait must not be negative, got -1ms");
  CHECK(message({.max_requests = 0, .burst = 0}) ==
        "RateLimiterConfig.max_requests must be at least 1, got 0");
  CHECK(message({}) == "accepted");
  CHECK_THROWS_WITH((RateLimiterConfig{.burst = 0}.validate()),
                    "RateLimiterConfig.burst must be at least 1, got 0");
}

TEST_CASE("the default clock is SteadyClock, and a limiter moves before first use",
          "[rate_limiter]") {
  bulwark::RateLimiter limiter{{.max_requests = 5, .window = 60s, .burst = 2}};
  static_assert(std::is_same_v<decltype(limiter), RateLimiter<bulwark::SteadyClock>>);
  RateLimiter moved = std::move(limiter);
  CHECK(attempt(moved).outcome == Outcome::ran);
  CHECK(attempt(moved).outcome == Outcome::ran);
  const Result third = attempt(moved);
  CHECK(third.outcome == Outcome::rate_limited);
  CHECK(third.retry_after > 11s);  // 12 s a token, less the few ns just spent
  CHECK(third.retry_after <= 12s);
}

TEST_CASE("a SteadyClock limiter at the seed's rate grants exactly its burst, then rejects",
          "[rate_limiter]") {
  // At 50 per 60 s the take reads the coarse clock; a reading that finds no token must still be
  // settled by the exact clock, and the coarse one must never grant beyond the burst.
  bulwark::RateLimiter<> limiter{
      {.max_requests = 50, .window = std::chrono::seconds{60}, .burst = 5}};
  int granted = 0;
  for (int i = 0; i < 5; ++i) granted += limiter.execute([] { return 1; });
  CHECK(granted == 5);
  try {
    limiter.execute([] { return 1; });
    FAIL("a sixth token was granted");
  } catch (const bulwark::rate_limited_error& e) {
    CHECK(e.retry_after() > std::chrono::milliseconds{1'100});
    CHECK(e.retry_after() <= std::chrono::milliseconds{1'200});
  }
  CHECK(limiter.metrics().available_tokens == 0);
}

TEST_CASE("on_event reports rejections and waits for a token", "[rate_limiter][events][threads]") {
  ObservedClock clock;
  std::mutex events_mutex;
  std::vector<bulwark::Event> events;
  const bulwark::EventListener record = [&](const bulwark::Event& e) {
    const std::scoped_lock lock{events_mutex};
    events.push_back(e);
  };
  RateLimiter<ObservedClock> limiter{
      {.max_requests = 1, .window = 1s, .burst = 1, .max_wait = 5s, .on_event = record}, clock};
  limiter.execute([] {});  // the only token: no event
  std::thread waiter([&] { limiter.execute([] {}); });
  const auto give_up = std::chrono::steady_clock::now() + 5s;
  while (clock.waiting() == 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
  REQUIRE(clock.waiting() == 1);  // queued for the next token
  clock.advance(1s);
  waiter.join();
  RateLimiter<ObservedClock> strict{
      {.max_requests = 1, .window = 1s, .burst = 1, .on_event = record}, clock};
  strict.execute([] {});
  CHECK_THROWS_AS(strict.execute([] {}), bulwark::rate_limited_error);
  const std::scoped_lock lock{events_mutex};
  REQUIRE(events.size() == 2);
  CHECK(events[0].type == bulwark::EventType::rate_limiter_waited);
  CHECK(events[0].delay == 1s);
  CHECK(events[1].type == bulwark::EventType::rate_limited);
  CHECK(events[1].delay == 1s);
}
