// Tests of bulwark/bulkhead.hpp: the concurrency cap, the FIFO queue and every way out of it.
#include <bulwark/bulkhead.hpp>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <latch>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/event_log.hpp"

using namespace std::chrono_literals;
using bulwark::Bulkhead;
using bulwark::BulkheadConfig;
using bulwark::BulkheadRejection;
using bulwark::Context;
using bulwark::ManualClock;

namespace {

// How a call through the bulkhead ended.
enum class Outcome { ran, queue_full, queue_timeout, cancelled, deadline_exceeded, other };

// Runs f through the bulkhead and classifies the way out. Safe to call from worker threads.
template <class Clock, class F>
Outcome call(Bulkhead<Clock>& bulkhead, const Context& ctx, F f) {
  try {
    bulkhead.execute(ctx, f);
    return Outcome::ran;
  } catch (const bulwark::bulkhead_rejected_error& e) {
    return e.reason() == BulkheadRejection::queue_full ? Outcome::queue_full
                                                       : Outcome::queue_timeout;
  } catch (const bulwark::cancelled_error&) {
    return Outcome::cancelled;
  } catch (const bulwark::deadline_exceeded_error&) {
    return Outcome::deadline_exceeded;
  } catch (...) {
    return Outcome::other;
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

// Holds callables inside the bulkhead until the test opens it (or 5 s pass, so a bug cannot hang).
class Gate {
 public:
  void open() {
    {
      const std::scoped_lock lock{mutex_};
      open_ = true;
    }
    opened_.notify_all();
  }
  void wait() {
    std::unique_lock lock{mutex_};
    opened_.wait_for(lock, 5s, [this] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_;
  bool open_ = false;
};

// A context that only carries a stop token / a deadline.
Context with_stop(std::stop_token stop) {
  Context ctx;
  ctx.stop = std::move(stop);
  return ctx;
}
Context with_deadline(ManualClock::time_point deadline) {
  Context ctx;
  ctx.deadline = deadline;
  return ctx;
}

// Runs one call through a bulkhead on its own thread and remembers how it ended.
class Caller {
 public:
  template <class Clock, class F>
  Caller(Bulkhead<Clock>& bulkhead, Context ctx, F f)
      : thread_([this, &bulkhead, ctx = std::move(ctx), f = std::move(f)] {
          outcome_ = call(bulkhead, ctx, f);
          done_ = true;
        }) {}
  [[nodiscard]] bool done() const { return done_; }
  [[nodiscard]] Outcome outcome() const { return outcome_; }  // Outcome::other until done()

 private:
  std::atomic<Outcome> outcome_{Outcome::other};
  std::atomic<bool> done_{false};
  std::jthread thread_;  // last: joined before the flags it writes are destroyed
};

// The threads of one test. Its destructor opens the gate and moves the clock a day on, so every
// wait ends even when an assertion failed half-way, then joins. Declare it after the bulkhead.
class Scene {
 public:
  explicit Scene(ManualClock clock) : clock_(std::move(clock)) {}
  Scene(const Scene&) = delete;
  Scene& operator=(const Scene&) = delete;
  ~Scene() {
    gate.open();
    clock_.advance(24h);
    callers_.clear();
    threads_.clear();
  }
  template <class Clock, class F>
  Caller& start(Bulkhead<Clock>& bulkhead, Context ctx, F f) {
    return callers_.emplace_back(bulkhead, std::move(ctx), std::move(f));
  }
  template <class F>
  void spawn(F f) {
    threads_.emplace_back(std::move(f));
  }
  Gate gate;  ///< Callables that wait on it stay inside the bulkhead until it opens.

 private:
  ManualClock clock_;
  std::list<Caller> callers_;
  std::vector<std::jthread> threads_;
};

// Raises `peak` to `value` if it is higher.
void raise_peak(std::atomic<std::size_t>& peak, std::size_t value) {
  std::size_t seen = peak.load();
  while (value > seen && !peak.compare_exchange_weak(seen, value)) {
  }
}

// Thread creation is slow under ThreadSanitizer: the stampedes there are smaller.
constexpr bool under_tsan =
#if defined(__SANITIZE_THREAD__)
    true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
    true;
#else
    false;
#endif
#else
    false;
#endif

struct custom_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
  int code = 42;
};

}  // namespace

TEST_CASE("the default BulkheadConfig follows the seed", "[bulkhead]") {
  const BulkheadConfig config;
  CHECK(config.max_concurrent == 10);
  CHECK(config.max_queue == 20);
  CHECK(config.queue_timeout == 5s);
  const Bulkhead bulkhead;
  const auto m = bulkhead.metrics();
  CHECK(m.active_count == 0);
  CHECK(m.queued_count == 0);
  CHECK(m.available_slots == 10);
}

TEST_CASE("every bad BulkheadConfig is a config_error naming the field", "[bulkhead]") {
  SECTION("max_concurrent below 1") {
    CHECK_THROWS_MATCHES(Bulkhead{{.max_concurrent = 0}}, bulwark::config_error,
                         Catch::Message("BulkheadConfig.max_concurrent must be at least 1, got 0"));
  }
  SECTION("queue_timeout of zero") {
    CHECK_THROWS_MATCHES(Bulkhead{{.queue_timeout = 0ms}}, bulwark::config_error,
                         Catch::Message("BulkheadConfig.queue_timeout must be above 0, got 0ms"));
  }
  SECTION("negative queue_timeout") {
    CHECK_THROWS_MATCHES(Bulkhead{{.queue_timeout = -5ms}}, bulwark::config_error,
                         Catch::Message("BulkheadConfig.queue_timeout must be above 0, got -5ms"));
  }
  SECTION("the first bad field is named") {
    CHECK_THROWS_MATCHES((Bulkhead{{.max_concurrent = 0, .queue_timeout = 0ms}}),
                         bulwark::config_error,
                         Catch::Message("BulkheadConfig.max_concurrent must be at least 1, got 0"));
  }
  SECTION("max_queue of 0 and max_concurrent of 1 are valid") {
    CHECK_NOTHROW(Bulkhead{{.max_concurrent = 1, .max_queue = 0, .queue_timeout = 1ms}});
  }
}

TEST_CASE("a call with a free slot runs and passes its result through", "[bulkhead]") {
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 3}, ManualClock{}};

  SECTION("a value") {
    CHECK(bulkhead.execute([] { return std::string("user 123"); }) == "user 123");
  }
  SECTION("a reference to the caller's object, not a copy") {
    int target = 7;
    int& result = bulkhead.execute([&]() -> int& { return target; });
    CHECK(&result == &target);
  }
  SECTION("void") {
    bool ran = false;
    bulkhead.execute([&] { ran = true; });
    CHECK(ran);
  }
  SECTION("a callable taking the context receives the caller's context") {
    std::stop_source stop;
    const Context ctx{.stop = stop.get_token(), .deadline = {}, .idempotent = false};
    const bool same = bulkhead.execute(ctx, [&](const Context& c) { return &c == &ctx; });
    CHECK(same);
  }
  SECTION("a move-only result") {
    auto result = bulkhead.execute([] { return std::make_unique<int>(5); });
    CHECK(*result == 5);
  }
  CHECK(bulkhead.metrics().active_count == 0);
  CHECK(bulkhead.metrics().available_slots == 3);
}

TEST_CASE("metrics count the running calls while they run", "[bulkhead]") {
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 3}, ManualClock{}};
  bulkhead.execute([&] {
    const auto outer = bulkhead.metrics();
    CHECK(outer.active_count == 1);
    CHECK(outer.available_slots == 2);
    CHECK(outer.queued_count == 0);
    bulkhead.execute([&] {
      const auto inner = bulkhead.metrics();
      CHECK(inner.active_count == 2);
      CHECK(inner.available_slots == 1);
    });
    CHECK(bulkhead.metrics().active_count == 1);
  });
  CHECK(bulkhead.metrics().active_count == 0);
  CHECK(bulkhead.metrics().available_slots == 3);
}

TEST_CASE("a slot is released when the callable throws, and the exception passes through unchanged",
          "[bulkhead]") {
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 1, .max_queue = 0}, ManualClock{}};
  for (int i = 0; i < 3; ++i) {  // with one slot and no queue, a leaked slot fails the next call
    try {
      bulkhead.execute([]() -> int { throw custom_failure("upstream said no"); });
      FAIL("the exception did not pass through");
    } catch (const custom_failure& e) {
      CHECK(std::string(e.what()) == "upstream said no");
      CHECK(e.code == 42);
    }
    CHECK(bulkhead.metrics().active_count == 0);
    CHECK(bulkhead.metrics().available_slots == 1);
  }
  CHECK(bulkhead.execute([] { return 1; }) == 1);
}

TEST_CASE("with max_queue = 0 a call is rejected at once with queue_full when every slot is taken",
          "[bulkhead]") {
  ManualClock clock;
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 2, .max_queue = 0}, clock};
  Outcome nested = Outcome::other;
  bulkhead.execute([&] {
    bulkhead.execute([&] {  // the second slot
      nested = call(bulkhead, Context{}, [] {});
      const auto m = bulkhead.metrics();
      CHECK(m.active_count == 2);
      CHECK(m.queued_count == 0);
      CHECK(m.available_slots == 0);
    });
  });
  CHECK(nested == Outcome::queue_full);
  CHECK(clock.sleeps().empty());
  CHECK(bulkhead.metrics().active_count == 0);
}

TEST_CASE("a call that would wait with a stop token already fired is cancelled at once",
          "[bulkhead]") {
  ManualClock clock;
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 1, .max_queue = 5}, clock};
  std::stop_source stop;
  stop.request_stop();
  Outcome nested = Outcome::other;
  bulkhead.execute([&] { nested = call(bulkhead, with_stop(stop.get_token()), [] {}); });
  CHECK(nested == Outcome::cancelled);
  CHECK(bulkhead.metrics().queued_count == 0);
  CHECK(bulkhead.metrics().active_count == 0);
}

TEST_CASE("a call that would wait past its deadline fails at once with deadline_exceeded",
          "[bulkhead]") {
  ManualClock clock;
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 1, .max_queue = 5}, clock};
  Outcome nested = Outcome::other;
  SECTION("deadline in the past") {
    bulkhead.execute([&] { nested = call(bulkhead, with_deadline(clock.now() - 1ms), [] {}); });
  }
  SECTION("deadline exactly now") {
    bulkhead.execute([&] { nested = call(bulkhead, with_deadline(clock.now()), [] {}); });
  }
  CHECK(nested == Outcome::deadline_exceeded);
  CHECK(bulkhead.metrics().queued_count == 0);
}

TEST_CASE("a full queue rejects with queue_full", "[bulkhead][threads]") {
  ManualClock clock;
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 1, .max_queue = 2}, clock};
  Scene scene{clock};
  Caller& holder = scene.start(bulkhead, {}, [&] { scene.gate.wait(); });
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == 1; }));
  Caller& first = scene.start(bulkhead, {}, [] {});
  Caller& second = scene.start(bulkhead, {}, [] {});
  REQUIRE(eventually([&] { return bulkhead.metrics().queued_count == 2; }));

  CHECK(call(bulkhead, {}, [] {}) == Outcome::queue_full);
  const auto m = bulkhead.metrics();
  CHECK(m.active_count == 1);
  CHECK(m.queued_count == 2);
  CHECK(m.available_slots == 0);

  scene.gate.open();
  REQUIRE(eventually([&] { return holder.done() && first.done() && second.done(); }));
  CHECK(holder.outcome() == Outcome::ran);
  CHECK(first.outcome() == Outcome::ran);
  CHECK(second.outcome() == Outcome::ran);
  CHECK(bulkhead.metrics().active_count == 0);
  CHECK(bulkhead.metrics().queued_count == 0);
}

TEST_CASE("a queued call times out with queue_timeout when the clock passes queue_timeout",
          "[bulkhead][threads]") {
  ManualClock clock;
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 1, .max_queue = 5, .queue_timeout = 5s}, clock};
  Scene scene{clock};
  Caller& holder = scene.start(bulkhead, {}, [&] { scene.gate.wait(); });
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == 1; }));
  Caller& waiter = scene.start(bulkhead, {}, [] {});
  REQUIRE(eventually([&] { return bulkhead.metrics().queued_count == 1; }));

  clock.advance(4999ms);
  std::this_thread::yield();
  CHECK_FALSE(waiter.done());
  CHECK(bulkhead.metrics().queued_count == 1);

  clock.advance(1ms);
  REQUIRE(eventually([&] { return waiter.done(); }));
  CHECK(waiter.outcome() == Outcome::queue_timeout);
  CHECK(bulkhead.metrics().queued_count == 0);
  CHECK(bulkhead.metrics().active_count == 1);

  scene.gate.open();
  REQUIRE(eventually([&] { return holder.done(); }));
  CHECK(holder.outcome() == Outcome::ran);
  CHECK(bulkhead.metrics().available_slots == 1);
  CHECK(clock.sleeps().empty());  // the bulkhead waits; it never sleeps
}

TEST_CASE("a queue_timeout too long to add to the clock waits for a slot instead of overflowing",
          "[bulkhead][threads]") {
  ManualClock clock;
  Bulkhead<ManualClock> bulkhead{
      {.max_concurrent = 1, .max_queue = 1, .queue_timeout = std::chrono::milliseconds::max()},
      clock};
  Scene scene{clock};
  Caller& holder = scene.start(bulkhead, {}, [&] { scene.gate.wait(); });
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == 1; }));
  Caller& waiter = scene.start(bulkhead, {}, [] {});
  REQUIRE(eventually([&] { return bulkhead.metrics().queued_count == 1; }));
  clock.advance(24h * 365);
  std::this_thread::yield();
  CHECK_FALSE(waiter.done());
  scene.gate.open();
  REQUIRE(eventually([&] { return holder.done() && waiter.done(); }));
  CHECK(waiter.outcome() == Outcome::ran);
}

TEST_CASE("queued waiters are served in arrival order", "[bulkhead][threads]") {
  constexpr int waiters = 8;
  ManualClock clock;
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 1, .max_queue = waiters}, clock};
  std::mutex order_mutex;
  std::vector<int> order;
  Scene scene{clock};  // last: its threads are joined before what they use is destroyed
  scene.start(bulkhead, {}, [&] { scene.gate.wait(); });
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == 1; }));
  for (int i = 0; i < waiters; ++i) {
    scene.start(bulkhead, {}, [&, i] {
      const std::scoped_lock lock{order_mutex};
      order.push_back(i);
    });
    REQUIRE(eventually(
        [&] { return bulkhead.metrics().queued_count == static_cast<std::size_t>(i + 1); }));
  }
  scene.gate.open();
  REQUIRE(eventually([&] {
    const std::scoped_lock lock{order_mutex};
    return order.size() == waiters;
  }));
  const std::scoped_lock lock{order_mutex};
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("a released slot goes straight to the oldest waiter, so a new arrival queues behind it",
          "[bulkhead][threads]") {
  ManualClock clock;
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 1, .max_queue = 1}, clock};
  Gate second_gate;
  std::atomic<bool> second_running{false};
  std::atomic<bool> third_ran{false};
  Scene scene{clock};  // last: its threads are joined before what they use is destroyed
  Caller& first = scene.start(bulkhead, {}, [&] { scene.gate.wait(); });
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == 1; }));
  Caller& second = scene.start(bulkhead, {}, [&] {
    second_running = true;
    second_gate.wait();
  });
  REQUIRE(eventually([&] { return bulkhead.metrics().queued_count == 1; }));

  scene.gate.open();
  REQUIRE(eventually([&] { return first.done(); }));
  // The slot was handed over, never free: no arrival could have taken it.
  CHECK(bulkhead.metrics().available_slots == 0);
  CHECK(bulkhead.metrics().active_count == 1);
  REQUIRE(eventually([&] { return second_running.load(); }));
  // A newcomer now waits in the queue (not rejected, and no slot).
  Caller& third = scene.start(bulkhead, {}, [&] { third_ran = true; });
  REQUIRE(eventually([&] { return bulkhead.metrics().queued_count == 1; }));
  CHECK_FALSE(third_ran);
  second_gate.open();
  REQUIRE(eventually([&] { return second.done() && third.done(); }));
  CHECK(first.outcome() == Outcome::ran);
  CHECK(second.outcome() == Outcome::ran);
  CHECK(third.outcome() == Outcome::ran);
  CHECK(third_ran);
}

TEST_CASE("stopping a queued call's stop token ends its wait with cancelled_error",
          "[bulkhead][threads]") {
  ManualClock clock;
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 1, .max_queue = 5}, clock};
  std::stop_source stop;
  Scene scene{clock};  // last: its threads are joined before what they use is destroyed
  Caller& holder = scene.start(bulkhead, {}, [&] { scene.gate.wait(); });
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == 1; }));
  Caller& cancelled = scene.start(bulkhead, with_stop(stop.get_token()), [] {});
  REQUIRE(eventually([&] { return bulkhead.metrics().queued_count == 1; }));
  Caller& other = scene.start(bulkhead, {}, [] {});
  REQUIRE(eventually([&] { return bulkhead.metrics().queued_count == 2; }));

  stop.request_stop();
  REQUIRE(eventually([&] { return cancelled.done(); }));
  CHECK(cancelled.outcome() == Outcome::cancelled);
  CHECK(bulkhead.metrics().queued_count == 1);  // the other waiter stays queued

  scene.gate.open();
  REQUIRE(eventually([&] { return holder.done() && other.done(); }));
  CHECK(other.outcome() == Outcome::ran);
  CHECK(bulkhead.metrics().active_count == 0);
}

TEST_CASE("a deadline passing while queued ends the wait with deadline_exceeded_error",
          "[bulkhead][threads]") {
  ManualClock clock;
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 1, .max_queue = 5, .queue_timeout = 5s}, clock};
  Scene scene{clock};
  Caller& holder = scene.start(bulkhead, {}, [&] { scene.gate.wait(); });
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == 1; }));

  SECTION("a deadline before queue_timeout ends the wait with deadline_exceeded_error") {
    Caller& waiter = scene.start(bulkhead, with_deadline(clock.now() + 2s), [] {});
    REQUIRE(eventually([&] { return bulkhead.metrics().queued_count == 1; }));
    clock.advance(1999ms);
    std::this_thread::yield();
    CHECK_FALSE(waiter.done());
    clock.advance(1ms);
    REQUIRE(eventually([&] { return waiter.done(); }));
    CHECK(waiter.outcome() == Outcome::deadline_exceeded);
  }
  SECTION("a deadline after queue_timeout leaves queue_timeout to end the wait") {
    Caller& waiter = scene.start(bulkhead, with_deadline(clock.now() + 10s), [] {});
    REQUIRE(eventually([&] { return bulkhead.metrics().queued_count == 1; }));
    clock.advance(5s);
    REQUIRE(eventually([&] { return waiter.done(); }));
    CHECK(waiter.outcome() == Outcome::queue_timeout);
  }
  CHECK(bulkhead.metrics().queued_count == 0);
  scene.gate.open();
  REQUIRE(eventually([&] { return holder.done(); }));
  CHECK(bulkhead.metrics().active_count == 0);
}

TEST_CASE("the concurrency cap is never exceeded", "[bulkhead][threads]") {
  constexpr int thread_count = 8;
  constexpr int calls_per_thread = 200;
  constexpr std::size_t cap = 3;
  // Real clock: a waiter stranded by a bug times out (and fails the test) instead of hanging it.
  Bulkhead bulkhead{{.max_concurrent = cap, .max_queue = thread_count, .queue_timeout = 2s}};
  std::atomic<std::size_t> running{0};
  std::atomic<std::size_t> peak{0};
  std::atomic<int> ran{0};
  std::atomic<int> rejected{0};
  {
    std::latch start{thread_count};
    std::vector<std::jthread> threads;
    threads.reserve(thread_count);
    for (int t = 0; t < thread_count; ++t) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        for (int i = 0; i < calls_per_thread; ++i) {
          const Outcome outcome = call(bulkhead, {}, [&] {
            raise_peak(peak, running.fetch_add(1) + 1);
            std::this_thread::yield();
            running.fetch_sub(1);
          });
          (outcome == Outcome::ran ? ran : rejected).fetch_add(1);
        }
      });
    }
  }
  CHECK(peak.load() <= cap);
  CHECK(peak.load() >= 1);
  CHECK(ran.load() == thread_count * calls_per_thread);  // queue room for everyone: none rejected
  CHECK(rejected.load() == 0);
  const auto m = bulkhead.metrics();
  CHECK(m.active_count == 0);
  CHECK(m.queued_count == 0);
  CHECK(m.available_slots == cap);
}

TEST_CASE("a thousand callers arriving in the same instant each leave exactly once",
          "[bulkhead][threads]") {
  constexpr int callers = under_tsan ? 200 : 1000;
  constexpr std::size_t slots = 4;
  ManualClock clock;  // time stands still: nobody times out unless the test says so
  std::atomic<int> ran{0};
  std::atomic<int> queue_full{0};
  std::atomic<int> queue_timeout{0};
  std::atomic<int> other{0};
  std::atomic<int> finished{0};
  std::atomic<std::size_t> running{0};
  std::atomic<std::size_t> peak{0};
  std::latch start{callers};
  // Each caller waits for all the others, makes one call and tallies how it ended.
  auto stampede = [&](Scene& scene, auto& bulkhead, auto body) {
    for (int i = 0; i < callers; ++i) {
      scene.spawn([&, body] {
        start.arrive_and_wait();
        switch (call(bulkhead, {}, [&] {
          raise_peak(peak, running.fetch_add(1) + 1);
          body();
          running.fetch_sub(1);
        })) {
          case Outcome::ran:
            ran.fetch_add(1);
            break;
          case Outcome::queue_full:
            queue_full.fetch_add(1);
            break;
          case Outcome::queue_timeout:
            queue_timeout.fetch_add(1);
            break;
          default:
            other.fetch_add(1);
            break;
        }
        finished.fetch_add(1);
      });
    }
  };

  SECTION("with room for all, all of them run, at most max_concurrent at a time") {
    Bulkhead<ManualClock> bulkhead{{.max_concurrent = slots, .max_queue = callers}, clock};
    Scene scene{clock};
    stampede(scene, bulkhead, [] {});
    REQUIRE(eventually([&] { return finished.load() == callers; }));
    CHECK(ran.load() == callers);
    CHECK(queue_full.load() + queue_timeout.load() + other.load() == 0);
    CHECK(peak.load() <= slots);
    const auto m = bulkhead.metrics();
    CHECK(m.active_count == 0);
    CHECK(m.queued_count == 0);
    CHECK(m.available_slots == slots);
  }

  SECTION("with every slot held, each is a success, a queue_full or a queue_timeout, once") {
    constexpr std::size_t queue = callers / 2;
    constexpr int overflow = callers - static_cast<int>(slots + queue);
    Bulkhead<ManualClock> bulkhead{{.max_concurrent = slots, .max_queue = queue}, clock};
    Scene scene{clock};
    stampede(scene, bulkhead, [&] { scene.gate.wait(); });
    REQUIRE(eventually([&] {
      const auto m = bulkhead.metrics();
      return m.active_count == slots && m.queued_count == queue && queue_full.load() == overflow;
    }));
    clock.advance(5s);  // every queued caller times out
    REQUIRE(eventually([&] { return queue_timeout.load() == static_cast<int>(queue); }));
    CHECK(bulkhead.metrics().queued_count == 0);
    CHECK(ran.load() == 0);
    scene.gate.open();
    REQUIRE(eventually([&] { return finished.load() == callers; }));
    CHECK(ran.load() == static_cast<int>(slots));
    CHECK(queue_full.load() == overflow);
    CHECK(queue_timeout.load() == static_cast<int>(queue));
    CHECK(other.load() == 0);
    CHECK(peak.load() <= slots);
    const auto m = bulkhead.metrics();
    CHECK(m.active_count == 0);
    CHECK(m.queued_count == 0);
    CHECK(m.available_slots == slots);
  }
}

TEST_CASE("waiters granted, cancelled and timed out in the same instant each leave exactly once",
          "[bulkhead][threads]") {
  constexpr int waiters = 64;
  constexpr std::size_t slots = 4;
  ManualClock clock;
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = slots, .max_queue = waiters}, clock};
  std::vector<std::stop_source> stops(waiters);
  std::latch go{3};
  std::atomic<int> bodies{0};
  Scene scene{clock};  // last: its threads are joined before what they use is destroyed
  for (std::size_t i = 0; i < slots; ++i) scene.start(bulkhead, {}, [&] { scene.gate.wait(); });
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == slots; }));
  std::vector<Caller*> callers;
  callers.reserve(waiters);
  for (int i = 0; i < waiters; ++i) {
    callers.push_back(&scene.start(bulkhead,
                                   with_stop(stops[static_cast<std::size_t>(i)].get_token()),
                                   [&] { bodies.fetch_add(1); }));
  }
  REQUIRE(eventually([&] { return bulkhead.metrics().queued_count == waiters; }));

  // Slots come free, stop tokens fire and the queue timeout passes, all at once.
  scene.spawn([&] {
    go.arrive_and_wait();
    scene.gate.open();
  });
  scene.spawn([&] {
    go.arrive_and_wait();
    for (int i = waiters - 1; i >= 0; i -= 2) stops[static_cast<std::size_t>(i)].request_stop();
  });
  go.arrive_and_wait();
  clock.advance(5s);

  REQUIRE(eventually([&] {
    return std::all_of(callers.begin(), callers.end(), [](const Caller* c) { return c->done(); });
  }));
  int ran = 0;
  int left_early = 0;
  for (const Caller* c : callers) {
    const Outcome outcome = c->outcome();
    CHECK((outcome == Outcome::ran || outcome == Outcome::cancelled ||
           outcome == Outcome::queue_timeout));
    (outcome == Outcome::ran ? ran : left_early) += 1;
  }
  CHECK(ran + left_early == waiters);
  // No waiter ran without being told so, nor was told so without running.
  CHECK(bodies.load() == ran);
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == 0; }));
  CHECK(bulkhead.metrics().queued_count == 0);
  CHECK(bulkhead.metrics().available_slots == slots);
}

TEST_CASE("callers hammering few slots all get through, none left waiting beside a free slot",
          "[bulkhead][threads]") {
  // Every caller has queue room and time; a waiter stranded beside a free slot would time out.
  constexpr int thread_count = 4;
  constexpr int calls_per_thread = under_tsan ? 2'000 : 20'000;
  const std::size_t slots = GENERATE(1, 2);
  Bulkhead bulkhead{{.max_concurrent = slots, .max_queue = thread_count, .queue_timeout = 2s}};
  std::atomic<int> ran{0};
  std::atomic<int> failed{0};
  {
    std::latch start{thread_count};
    std::vector<std::jthread> threads;
    threads.reserve(thread_count);
    for (int t = 0; t < thread_count; ++t) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        for (int i = 0; i < calls_per_thread; ++i) {
          (call(bulkhead, {}, [] {}) == Outcome::ran ? ran : failed).fetch_add(1);
        }
      });
    }
  }
  CHECK(failed.load() == 0);
  CHECK(ran.load() == thread_count * calls_per_thread);
  CHECK(bulkhead.metrics().available_slots == slots);
  CHECK(bulkhead.metrics().queued_count == 0);
}

TEST_CASE("a slot released just as a caller arrives always reaches that caller",
          "[bulkhead][threads]") {
  // Round after round, one thread releases the only slot while another arrives, their timing
  // shifted a little each round. A releaser that sees nobody waiting and an arrival that sees no
  // free slot must never leave the arrival queued beside a free slot: with nobody else arriving,
  // such a caller would only leave by queue_timeout. (Real clock: a bug fails, it cannot hang.)
  constexpr int rounds = under_tsan ? 2'000 : 20'000;
  Bulkhead bulkhead{{.max_concurrent = 1, .max_queue = 1, .queue_timeout = 2s}};
  std::atomic<int> holding{-1};   // round in which the holder has the slot
  std::atomic<int> arriving{-1};  // round in which the arrival is about to call
  std::atomic<int> arrived{-1};   // round whose arrival has finished its call
  std::atomic<int> timed_out{0};
  std::atomic<int> ran{0};
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  auto spin_until = [&](const std::atomic<int>& flag, int round) {
    while (flag.load() < round) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::yield();
    }
    return true;
  };
  auto pause = [](int spins) {
    for (int i = 0; i < spins; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);  // kept
  };
  {
    std::jthread arrival{[&] {
      for (int round = 0; round < rounds; ++round) {
        if (!spin_until(holding, round)) return;
        arriving = round;
        pause(round % 256);  // sweeps the arrival across the release
        const Outcome outcome = call(bulkhead, {}, [] {});
        (outcome == Outcome::ran ? ran : timed_out).fetch_add(1);
        arrived = round;
      }
    }};
    for (int round = 0; round < rounds; ++round) {
      bulkhead.execute([&] {
        holding = round;
        spin_until(arriving, round);
      });
      if (!spin_until(arrived, round)) break;
    }
  }
  CHECK(timed_out.load() == 0);
  CHECK(ran.load() == rounds);
  CHECK(bulkhead.metrics().available_slots == 1);
  CHECK(bulkhead.metrics().queued_count == 0);
}

TEST_CASE("a long run of arrivals, releases, cancellations and timeouts keeps every count exact",
          "[bulkhead][.stress]") {
  constexpr int thread_count = 8;
  constexpr int calls_per_thread = 50'000;
  Bulkhead bulkhead{{.max_concurrent = 2, .max_queue = 4, .queue_timeout = 1ms}};
  std::atomic<std::size_t> running{0};
  std::atomic<std::size_t> peak{0};
  std::atomic<int> outcomes{0};
  std::atomic<int> other{0};
  {
    std::latch start{thread_count};
    std::vector<std::jthread> threads;
    threads.reserve(thread_count);
    for (int t = 0; t < thread_count; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < calls_per_thread; ++i) {
          std::stop_source stop;
          if ((i + t) % 7 == 0) stop.request_stop();
          const Outcome outcome = call(bulkhead, with_stop(stop.get_token()), [&] {
            raise_peak(peak, running.fetch_add(1) + 1);
            if (i % 3 == 0) std::this_thread::yield();
            running.fetch_sub(1);
          });
          (outcome == Outcome::other ? other : outcomes).fetch_add(1);
        }
      });
    }
  }
  CHECK(other.load() == 0);
  CHECK(outcomes.load() == thread_count * calls_per_thread);
  CHECK(peak.load() <= 2);
  CHECK(bulkhead.metrics().available_slots == 2);
  CHECK(bulkhead.metrics().queued_count == 0);
}

TEST_CASE("a bulkhead is movable before use and works after the move", "[bulkhead]") {
  static_assert(std::is_nothrow_move_constructible_v<Bulkhead<>>);
  static_assert(std::is_nothrow_move_constructible_v<Bulkhead<ManualClock>>);
  Bulkhead<ManualClock> original{{.max_concurrent = 2}, ManualClock{}};
  Bulkhead<ManualClock> moved = std::move(original);
  CHECK(moved.execute([] { return 3; }) == 3);
  CHECK(moved.metrics().available_slots == 2);
}

// --- events ----------------------------------------------------------------------------------

namespace {

using bulwark::test::EventLog;
using bulwark::test::Seen;

constexpr auto queued = bulwark::EventType::bulkhead_queued;
constexpr auto dequeued = bulwark::EventType::bulkhead_dequeued;
constexpr auto rejected = bulwark::EventType::bulkhead_rejected;

}  // namespace

TEST_CASE("on_event reports queueing, the wait of a dequeued call and both kinds of rejection",
          "[bulkhead][events][threads]") {
  ManualClock clock;
  EventLog log;
  Bulkhead<ManualClock> bulkhead{
      {.max_concurrent = 1, .max_queue = 1, .queue_timeout = 5s, .on_event = log.listener()},
      clock};
  Gate second_gate;
  Scene scene{clock};  // last: its threads are joined before what they use is destroyed

  // A call with a free slot reports nothing; one that finds it taken queues.
  Caller& holder = scene.start(bulkhead, {}, [&] { scene.gate.wait(); });
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == 1; }));
  CHECK(log.size() == 0);
  Caller& waiter = scene.start(bulkhead, {}, [] {});
  REQUIRE(eventually([&] { return log.size() == 1; }));
  // The queue is full: rejected at once, on this thread, having waited nothing.
  CHECK(call(bulkhead, {}, [] {}) == Outcome::queue_full);
  CHECK(log.size() == 2);
  // The waiter gets the slot after 2 s.
  clock.advance(2s);
  scene.gate.open();
  REQUIRE(eventually([&] { return holder.done() && waiter.done(); }));
  CHECK(waiter.outcome() == Outcome::ran);
  CHECK(log.size() == 3);

  // A waiter whose queue_timeout passes.
  Caller& second_holder = scene.start(bulkhead, {}, [&] { second_gate.wait(); });
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == 1; }));
  Caller& timed_out = scene.start(bulkhead, {}, [] {});
  REQUIRE(eventually([&] { return log.size() == 4; }));
  clock.advance(5s);
  REQUIRE(eventually([&] { return timed_out.done(); }));
  CHECK(timed_out.outcome() == Outcome::queue_timeout);
  second_gate.open();
  REQUIRE(eventually([&] { return second_holder.done(); }));

  CHECK(log.seen() ==
        std::vector<Seen>{
            {queued, 0ms}, {rejected, 0ms}, {dequeued, 2s}, {queued, 0ms}, {rejected, 5s}});
  CHECK(bulkhead.metrics().available_slots == 1);
  CHECK(bulkhead.metrics().queued_count == 0);
}

TEST_CASE("a queued call ended by its stop token or deadline reports only that it queued",
          "[bulkhead][events][threads]") {
  ManualClock clock;
  EventLog log;
  Bulkhead<ManualClock> bulkhead{
      {.max_concurrent = 1, .max_queue = 5, .queue_timeout = 5s, .on_event = log.listener()},
      clock};
  std::stop_source stop;
  Scene scene{clock};  // last: its threads are joined before what they use is destroyed
  Caller& holder = scene.start(bulkhead, {}, [&] { scene.gate.wait(); });
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == 1; }));

  Caller& cancelled = scene.start(bulkhead, with_stop(stop.get_token()), [] {});
  REQUIRE(eventually([&] { return log.size() == 1; }));
  stop.request_stop();
  REQUIRE(eventually([&] { return cancelled.done(); }));
  CHECK(cancelled.outcome() == Outcome::cancelled);

  Caller& late = scene.start(bulkhead, with_deadline(clock.now() + 1s), [] {});
  REQUIRE(eventually([&] { return log.size() == 2; }));
  clock.advance(1s);
  REQUIRE(eventually([&] { return late.done(); }));
  CHECK(late.outcome() == Outcome::deadline_exceeded);

  // Already past its deadline or cancelled when it would queue: nothing at all.
  CHECK(call(bulkhead, with_stop(stop.get_token()), [] {}) == Outcome::cancelled);
  CHECK(call(bulkhead, with_deadline(clock.now()), [] {}) == Outcome::deadline_exceeded);

  scene.gate.open();
  REQUIRE(eventually([&] { return holder.done(); }));
  CHECK(log.seen() == std::vector<Seen>{{queued, 0ms}, {queued, 0ms}});
  CHECK(bulkhead.metrics().queued_count == 0);
}

TEST_CASE("a throwing bulkhead listener changes no outcome and leaks no slot",
          "[bulkhead][events][threads]") {
  ManualClock clock;
  std::atomic<int> heard{0};
  Bulkhead<ManualClock> bulkhead{{.max_concurrent = 1,
                                  .max_queue = 1,
                                  .queue_timeout = 5s,
                                  .on_event =
                                      [&heard](const bulwark::Event&) {
                                        ++heard;
                                        throw std::runtime_error("listener bug");
                                      }},
                                 clock};
  Scene scene{clock};  // last: its threads are joined before what they use is destroyed
  Caller& holder = scene.start(bulkhead, {}, [&] { scene.gate.wait(); });
  REQUIRE(eventually([&] { return bulkhead.metrics().active_count == 1; }));

  Caller& timed_out = scene.start(bulkhead, {}, [] {});
  REQUIRE(eventually([&] { return heard.load() == 1; }));  // queued
  CHECK(call(bulkhead, {}, [] {}) == Outcome::queue_full);
  clock.advance(5s);
  REQUIRE(eventually([&] { return timed_out.done(); }));
  CHECK(timed_out.outcome() == Outcome::queue_timeout);

  std::atomic<bool> ran{false};
  Caller& served = scene.start(bulkhead, {}, [&] { ran = true; });
  REQUIRE(eventually([&] { return heard.load() == 4; }));  // queued again
  scene.gate.open();
  REQUIRE(eventually([&] { return holder.done() && served.done(); }));
  CHECK(holder.outcome() == Outcome::ran);
  CHECK(served.outcome() == Outcome::ran);
  CHECK(ran);
  CHECK(heard.load() == 5);  // queued, queue_full, queue_timeout, queued, dequeued
  const auto m = bulkhead.metrics();
  CHECK(m.active_count == 0);
  CHECK(m.queued_count == 0);
  CHECK(m.available_slots == 1);
  CHECK(bulkhead.execute([] { return 8; }) == 8);
}
