// Tests for bulwark/connection_pool.hpp: LIFO reuse, discarding, idle and lifetime expiry under
// ManualClock, FIFO waiting with timeout, cancellation and deadline, close(), exact metrics, and
// the max_connections cap under real threads.
#include <bulwark/connection_pool.hpp>
#include <bulwark/pipeline.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/allocations.hpp"
#include "support/event_log.hpp"

using namespace std::chrono_literals;
using bulwark::ConnectionPool;
using bulwark::ConnectionPoolConfig;
using bulwark::ConnectionPoolMetrics;
using bulwark::Context;
using bulwark::ManualClock;

namespace {

// Counts the connections a test's factory opened and how many of them were closed (destroyed).
struct Counters {
  std::atomic<int> opened{0};
  std::atomic<int> closed{0};
};

// A connection that records its own closing; moved-from shells close nothing.
class Conn {
 public:
  Conn(Counters& counters, int id) : counters_(&counters), id_(id) {}
  Conn(Conn&& other) noexcept
      : counters_(std::exchange(other.counters_, nullptr)), id_(other.id_) {}
  Conn& operator=(Conn&&) = delete;
  ~Conn() {
    if (counters_ != nullptr) ++counters_->closed;
  }
  [[nodiscard]] int id() const { return id_; }

 private:
  Counters* counters_;
  int id_;
};

// ManualClock that also counts the calls waiting in the pool, so a test knows a thread is queued
// (the pool links a waiter before it starts to wait).
class WatchedClock {
 public:
  using duration = ManualClock::duration;
  using time_point = ManualClock::time_point;

  [[nodiscard]] time_point now() const noexcept { return clock_.now(); }
  bool sleep_for(duration how_long, std::stop_token stop = {}) const {
    return clock_.sleep_for(how_long, stop);
  }
  void advance(duration how_long) const { clock_.advance(how_long); }
  [[nodiscard]] int waiting() const noexcept { return waiting_->load(); }  ///< Waits in progress.
  [[nodiscard]] int waits() const noexcept { return waits_->load(); }      ///< Waits ever begun.

  template <class Lock, class Predicate>
  bool wait_until(std::condition_variable_any& cv, Lock& lock, std::stop_token stop,
                  time_point deadline, Predicate ready) const {
    ++*waits_;
    ++*waiting_;
    const bool result = clock_.wait_until(cv, lock, stop, deadline, ready);
    --*waiting_;
    return result;
  }

 private:
  ManualClock clock_;
  std::shared_ptr<std::atomic<int>> waiting_ = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> waits_ = std::make_shared<std::atomic<int>>(0);
};

// Advances `clock` by a day if the test is still running after 5 s of real time, so a caller that
// a bug left waiting times out and the test fails (check fired()) instead of hanging the suite.
// Declare it before the threads it guards: it must outlive their joins.
template <class Clock>
class Watchdog {
 public:
  explicit Watchdog(Clock clock)
      : thread_{[this, clock](std::stop_token stop) {
          std::mutex mutex;
          std::condition_variable_any never;
          std::unique_lock lock{mutex};
          never.wait_for(lock, stop, 5s, [] { return false; });
          if (!stop.stop_requested()) {
            fired_ = true;
            clock.advance(24h);
          }
        }} {}
  [[nodiscard]] bool fired() const noexcept { return fired_; }

 private:
  std::atomic<bool> fired_{false};
  std::jthread thread_;  // last member: stopped and joined first
};

using Pool = ConnectionPool<Conn, ManualClock>;
using WatchedPool = ConnectionPool<Conn, WatchedClock>;

std::function<Conn()> factory_for(Counters& counters) {
  return [&counters] { return Conn{counters, ++counters.opened}; };
}

// open, idle, in_use, created, reused, discarded: one array so a check shows every field.
std::array<std::size_t, 6> fields(const ConnectionPoolMetrics& m) {
  return {m.open, m.idle, m.in_use, m.created, m.reused, m.discarded};
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

// Contexts with one field set (Context's members have no default initialisers, so designated
// initialisers would trip -Wmissing-field-initializers).
Context with_stop(std::stop_token stop) {
  Context ctx;
  ctx.stop = std::move(stop);
  return ctx;
}
Context with_deadline(bulwark::SteadyClock::time_point deadline) {
  Context ctx;
  ctx.deadline = deadline;
  return ctx;
}

// A context whose stop token has fired: acquire() with it never waits, so a single-threaded test
// that would otherwise block on a bug fails with cancelled_error instead.
Context no_wait() {
  static std::stop_source fired = [] {
    std::stop_source source;
    source.request_stop();
    return source;
  }();
  return with_stop(fired.get_token());
}

struct upstream_failure {
  int code;
};

// A pass-through policy, to put the pool behind another stage of a Pipeline.
struct CountingPolicy {
  int calls = 0;
  template <class F>
  decltype(auto) execute(const Context& ctx, F&& next) {
    ++calls;
    return next(ctx);
  }
};

}  // namespace

TEST_CASE("sequential executes reuse one connection", "[connection_pool]") {
  Counters counters;
  Pool pool{factory_for(counters), {}, ManualClock{}};
  for (int i = 0; i < 5; ++i) CHECK(pool.execute([](Conn& c) { return c.id(); }) == 1);
  CHECK(counters.opened == 1);
  CHECK(counters.closed == 0);
  // open, idle, in_use, created, reused, discarded
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 1, 0, 1, 4, 0});
}

TEST_CASE("the most recently returned connection is reused first", "[connection_pool]") {
  Counters counters;
  Pool pool{factory_for(counters), {}, ManualClock{}};
  {
    auto first = pool.acquire();
    auto second = pool.acquire();
    CHECK(first->id() == 1);
    CHECK(second->id() == 2);
    // `second` is destroyed first (reverse order), so `first` (id 1) is returned last.
  }
  CHECK(pool.acquire()->id() == 1);
  CHECK(pool.acquire()->id() == 1);
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{2, 2, 0, 2, 2, 0});
}

TEST_CASE("a thread gets back the connection it returned last, ahead of newer ones",
          "[connection_pool][threads]") {
  Counters counters;
  Pool pool{factory_for(counters), {}, ManualClock{}};
  auto mine = std::make_optional(pool.acquire());
  auto theirs = std::make_optional(pool.acquire());
  REQUIRE((*mine)->id() == 1);
  mine.reset();                                // this thread returns connection 1
  std::thread other([&] { theirs.reset(); });  // another thread returns connection 2, later
  other.join();
  const auto again = pool.acquire();
  CHECK(again->id() == 1);  // plain LIFO would give 2, the newer one
  int third_got = 0;
  std::thread third([&] { third_got = pool.acquire()->id(); });  // no affinity: what is idle
  third.join();
  CHECK(third_got == 2);
  CHECK(pool.metrics().reused == 2);
}

TEST_CASE("a connection whose call threw is discarded and the exception passes through",
          "[connection_pool]") {
  Counters counters;
  Pool pool{factory_for(counters), {}, ManualClock{}};
  CHECK(pool.execute([](Conn& c) { return c.id(); }) == 1);
  try {
    pool.execute([](Conn&) -> int { throw upstream_failure{503}; });
    FAIL("the upstream failure did not pass through");
  } catch (const upstream_failure& failure) {
    CHECK(failure.code == 503);
  }
  CHECK(counters.closed == 1);
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{0, 0, 0, 1, 1, 1});
  CHECK(pool.execute([](Conn& c) { return c.id(); }) == 2);  // a new one, not the failed one
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 1, 0, 2, 1, 1});
}

TEST_CASE("lease.discard() closes the connection at once and frees its place",
          "[connection_pool]") {
  Counters counters;
  Pool pool{factory_for(counters), {.max_connections = 1}, ManualClock{}};
  auto lease = pool.acquire();
  REQUIRE(lease);
  CHECK((*lease).id() == 1);
  lease.discard();
  CHECK_FALSE(lease);
  CHECK(counters.closed == 1);
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{0, 0, 0, 1, 0, 1});
  CHECK(pool.acquire(no_wait())->id() == 2);  // the only place was freed
}

TEST_CASE("leases move and a moved-over lease returns its connection", "[connection_pool]") {
  Counters counters;
  Pool pool{factory_for(counters), {}, ManualClock{}};
  static_assert(std::is_nothrow_move_constructible_v<Pool::Lease>);
  static_assert(!std::is_copy_constructible_v<Pool::Lease> &&
                !std::is_copy_assignable_v<Pool::Lease>);
  auto a = pool.acquire();
  auto b = pool.acquire();
  Pool::Lease c{std::move(a)};
  CHECK_FALSE(a);  // NOLINT(bugprone-use-after-move): testing the moved-from state
  CHECK(c->id() == 1);
  CHECK(pool.metrics().in_use == 2);
  c = std::move(b);  // returns connection 1, takes connection 2
  CHECK(c->id() == 2);
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{2, 1, 1, 2, 0, 0});
}

TEST_CASE("idle connections unused for idle_timeout are closed instead of reused",
          "[connection_pool]") {
  ManualClock clock;
  Counters counters;
  Pool pool{factory_for(counters), {.max_connections = 3, .idle_timeout = 4s}, clock};
  std::optional<Pool::Lease> a{pool.acquire()};
  std::optional<Pool::Lease> b{pool.acquire()};
  std::optional<Pool::Lease> c{pool.acquire()};

  SECTION("stale ones are closed and the fresh one is reused") {
    a.reset();  // idle from 0s
    b.reset();
    clock.advance(3s);
    c.reset();  // idle from 3s
    clock.advance(1s);
    auto lease = pool.acquire(no_wait());
    CHECK(lease->id() == 3);
    CHECK(counters.closed == 2);
    CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 0, 1, 3, 1, 2});
  }

  SECTION("when every idle one is stale, all are closed before a new one is opened") {
    a.reset();
    b.reset();
    c.reset();
    clock.advance(5s);
    auto lease = pool.acquire(no_wait());
    CHECK(lease->id() == 4);
    CHECK(counters.closed == 3);
    CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 0, 1, 4, 0, 3});
  }

  SECTION("an idle one just under idle_timeout is reused") {
    c.reset();
    clock.advance(4s - 1ms);
    CHECK(pool.acquire(no_wait())->id() == 3);
    CHECK(counters.closed == 0);
  }
}

TEST_CASE("a stale idle connection is closed before its replacement is opened",
          "[connection_pool]") {
  ManualClock clock;
  Counters counters;
  int closed_when_opening = -1;
  Pool pool{[&] {
              closed_when_opening = counters.closed;
              return Conn{counters, ++counters.opened};
            },
            {.max_connections = 1, .idle_timeout = 4s},
            clock};
  CHECK(pool.execute([](Conn& c) { return c.id(); }) == 1);
  clock.advance(4s);
  CHECK(pool.execute(no_wait(), [](Conn& c) { return c.id(); }) == 2);
  CHECK(closed_when_opening == 1);  // never two sockets for one place
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 1, 0, 2, 0, 1});
}

TEST_CASE("a connection max_lifetime old is replaced, even while kept busy", "[connection_pool]") {
  ManualClock clock;
  Counters counters;
  Pool pool{factory_for(counters), {.idle_timeout = 4s, .max_lifetime = 10s}, clock};
  for (int i = 0; i < 4; ++i) {  // used at 0s, 3s, 6s, 9s: never idle for 4s
    CHECK(pool.execute([](Conn& c) { return c.id(); }) == 1);
    clock.advance(3s);
  }
  CHECK(counters.closed == 0);
  CHECK(pool.execute([](Conn& c) { return c.id(); }) == 2);  // 12s old: replaced
  CHECK(counters.closed == 1);
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 1, 0, 2, 3, 1});
}

TEST_CASE("a lent connection that reaches max_lifetime is closed when it comes back",
          "[connection_pool]") {
  ManualClock clock;
  Counters counters;
  Pool pool{factory_for(counters), {.max_lifetime = 10s}, clock};
  {
    auto lease = pool.acquire();
    clock.advance(10s - 1ms);
  }
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 1, 0, 1, 0, 0});
  {
    auto lease = pool.acquire();
    clock.advance(1ms);
  }
  CHECK(counters.closed == 1);
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{0, 0, 0, 1, 1, 1});
}

TEST_CASE("durations of milliseconds::max() mean never and do not overflow", "[connection_pool]") {
  ManualClock clock;
  Counters counters;
  constexpr auto never = std::chrono::milliseconds::max();
  Pool pool{factory_for(counters),
            {.idle_timeout = never, .max_lifetime = never, .acquire_timeout = never},
            clock};
  CHECK(pool.execute([](Conn& c) { return c.id(); }) == 1);
  clock.advance(24h * 365 * 10);
  CHECK(pool.execute([](Conn& c) { return c.id(); }) == 1);
  CHECK(counters.closed == 0);
}

TEST_CASE("a call that waits too long gets pool_exhausted_error after acquire_timeout",
          "[connection_pool][threads]") {
  WatchedClock clock;
  const Watchdog watchdog{clock};
  Counters counters;
  WatchedPool pool{factory_for(counters), {.max_connections = 1, .acquire_timeout = 2s}, clock};
  auto held = pool.acquire();
  std::atomic<bool> done{false};
  bool exhausted = false;
  WatchedClock::duration waited{};
  std::jthread waiter{[&] {
    const auto start = clock.now();
    try {
      auto lease = pool.acquire();
    } catch (const bulwark::pool_exhausted_error&) {
      exhausted = true;
    }
    waited = clock.now() - start;
    done = true;
  }};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  clock.advance(2s - 1ms);
  std::this_thread::sleep_for(2ms);  // room for a wrong early timeout to show
  CHECK_FALSE(done);
  clock.advance(1ms);
  REQUIRE(eventually([&] { return done.load(); }));
  waiter.join();
  CHECK(exhausted);
  CHECK(waited == 2s);
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 0, 1, 1, 0, 0});
  held.discard();  // the timed-out caller left the queue: the freed place goes to nobody
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{0, 0, 0, 1, 0, 1});
  CHECK_FALSE(watchdog.fired());
}

TEST_CASE("waiters are served first come, first served", "[connection_pool][threads]") {
  WatchedClock clock;
  const Watchdog watchdog{clock};
  Counters counters;
  WatchedPool pool{factory_for(counters), {.max_connections = 1}, clock};
  std::optional<WatchedPool::Lease> held{pool.acquire()};
  std::mutex order_mutex;
  std::vector<int> order;
  std::vector<std::jthread> waiters;
  for (int k = 1; k <= 3; ++k) {
    waiters.emplace_back([&, k] {
      try {
        auto lease = pool.acquire();
        const std::scoped_lock lock{order_mutex};
        order.push_back(k);
      } catch (const bulwark::error&) {
        const std::scoped_lock lock{order_mutex};
        order.push_back(-k);
      }
    });
    REQUIRE(eventually([&] { return clock.waiting() == k; }));  // k is queued before k + 1 starts
  }
  held.reset();
  for (auto& waiter : waiters) waiter.join();
  CHECK(order == std::vector<int>{1, 2, 3});
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 1, 0, 1, 3, 0});
  CHECK_FALSE(watchdog.fired());
}

TEST_CASE("a returned connection goes to the waiter, not to a later arrival",
          "[connection_pool][threads]") {
  WatchedClock clock;
  const Watchdog watchdog{clock};
  Counters counters;
  WatchedPool pool{factory_for(counters), {.max_connections = 1}, clock};
  std::optional<WatchedPool::Lease> held{pool.acquire()};
  std::atomic<bool> release_waiter{false};
  int waiter_got = 0;
  std::jthread waiter{[&] {
    try {
      auto lease = pool.acquire();
      waiter_got = lease->id();
      eventually([&] { return release_waiter.load(); });
    } catch (const bulwark::error&) {
      waiter_got = -1;
    }
  }};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  held.reset();  // handed straight to the waiter
  CHECK_THROWS_AS(pool.acquire(no_wait()), bulwark::cancelled_error);  // had to wait: nothing free
  release_waiter = true;
  waiter.join();
  CHECK(waiter_got == 1);
  CHECK(pool.acquire(no_wait())->id() == 1);
  CHECK_FALSE(watchdog.fired());
}

TEST_CASE("a place freed by discard goes to the oldest waiter, which opens a connection",
          "[connection_pool][threads]") {
  WatchedClock clock;
  const Watchdog watchdog{clock};
  Counters counters;
  WatchedPool pool{factory_for(counters), {.max_connections = 1}, clock};
  auto held = pool.acquire();
  int waiter_got = 0;
  std::jthread waiter{[&] {
    try {
      waiter_got = pool.acquire()->id();
    } catch (const bulwark::error&) {
      waiter_got = -1;
    }
  }};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  held.discard();
  waiter.join();
  CHECK(waiter_got == 2);
  CHECK(counters.closed == 1);
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 1, 0, 2, 0, 1});
  CHECK_FALSE(watchdog.fired());
}

TEST_CASE("a waiting call is cancelled by its stop token", "[connection_pool][threads]") {
  WatchedClock clock;
  const Watchdog watchdog{clock};
  Counters counters;
  // acquire_timeout of milliseconds::max(): the wait's end must not overflow.
  WatchedPool pool{factory_for(counters),
                   {.max_connections = 1, .acquire_timeout = std::chrono::milliseconds::max()},
                   clock};
  std::optional<WatchedPool::Lease> held{pool.acquire()};
  std::stop_source stop;
  bool cancelled = false;
  std::jthread waiter{[&] {
    try {
      auto lease = pool.acquire(with_stop(stop.get_token()));
    } catch (const bulwark::cancelled_error&) {
      cancelled = true;
    }
  }};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  stop.request_stop();
  waiter.join();
  CHECK(cancelled);
  held.reset();  // goes idle: the cancelled caller left the queue
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 1, 0, 1, 0, 0});
  CHECK_FALSE(watchdog.fired());
}

TEST_CASE("a waiting call ends at the earlier of its deadline and acquire_timeout",
          "[connection_pool][threads]") {
  WatchedClock clock;
  const Watchdog watchdog{clock};
  Counters counters;
  auto wait_and_report = [&](std::chrono::milliseconds acquire_timeout,
                             std::chrono::milliseconds deadline_in) {
    WatchedPool pool{
        factory_for(counters), {.max_connections = 1, .acquire_timeout = acquire_timeout}, clock};
    auto held = pool.acquire();
    std::string outcome;
    std::jthread waiter{[&] {
      try {
        auto lease = pool.acquire(with_deadline(clock.now() + deadline_in));
        outcome = "lease";
      } catch (const bulwark::deadline_exceeded_error&) {
        outcome = "deadline_exceeded";
      } catch (const bulwark::pool_exhausted_error&) {
        outcome = "pool_exhausted";
      }
    }};
    REQUIRE(eventually([&] { return clock.waiting() == 1; }));
    clock.advance(1s);
    waiter.join();
    return outcome;
  };
  CHECK(wait_and_report(10s, 1s) == "deadline_exceeded");
  CHECK(wait_and_report(1s, 5s) == "pool_exhausted");
  CHECK_FALSE(watchdog.fired());
}

TEST_CASE("a call that would wait fails at once when already cancelled or past its deadline",
          "[connection_pool]") {
  WatchedClock clock;
  const Watchdog watchdog{clock};
  Counters counters;
  WatchedPool pool{factory_for(counters), {.max_connections = 1}, clock};

  SECTION("a fired stop token: cancelled_error") {
    auto held = pool.acquire();
    CHECK_THROWS_AS(pool.acquire(no_wait()), bulwark::cancelled_error);
  }
  SECTION("a passed deadline: deadline_exceeded_error") {
    auto held = pool.acquire();
    CHECK_THROWS_AS(pool.acquire(with_deadline(clock.now())), bulwark::deadline_exceeded_error);
  }
  SECTION("a call that need not wait is served either way") {
    CHECK(pool.acquire(no_wait())->id() == 1);                   // opens one
    CHECK(pool.acquire(with_deadline(clock.now()))->id() == 1);  // reuses it
  }
  CHECK(clock.waits() == 0);  // failed before queueing
  CHECK(pool.metrics().in_use == 0);
  CHECK_FALSE(watchdog.fired());
}

TEST_CASE("a factory that throws releases its place and the exception reaches the caller",
          "[connection_pool]") {
  Counters counters;
  int calls = 0;
  Pool pool{[&] {
              if (++calls == 1) throw std::runtime_error("connection refused");
              return Conn{counters, ++counters.opened};
            },
            {.max_connections = 1},
            ManualClock{}};
  CHECK_THROWS_WITH(pool.acquire(), "connection refused");
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{0, 0, 0, 0, 0, 0});
  CHECK(pool.acquire(no_wait())->id() == 1);  // the only place is free again
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 1, 0, 1, 0, 0});
}

TEST_CASE("a place whose factory threw goes to the oldest waiter", "[connection_pool][threads]") {
  WatchedClock clock;
  const Watchdog watchdog{clock};
  Counters counters;
  std::atomic<int> calls{0};
  std::atomic<bool> in_factory{false};
  WatchedPool pool{
      [&] {
        if (++calls == 1) {
          in_factory = true;
          eventually([&] { return clock.waiting() == 1; });  // main is queued behind us
          throw std::runtime_error("connection refused");
        }
        return Conn{counters, ++counters.opened};
      },
      {.max_connections = 1},
      clock};
  bool first_failed = false;
  std::jthread first{[&] {
    try {
      auto lease = pool.acquire();
    } catch (const std::runtime_error&) {
      first_failed = true;
    }
  }};
  REQUIRE(eventually([&] { return in_factory.load(); }));
  auto lease = pool.acquire();  // waits: the only place is reserved by `first`
  first.join();
  CHECK(first_failed);
  CHECK(lease->id() == 1);
  CHECK(calls == 2);
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 0, 1, 1, 0, 0});
  CHECK_FALSE(watchdog.fired());
}

TEST_CASE("close() closes idle connections at once and lent ones when they return",
          "[connection_pool]") {
  Counters counters;
  Pool pool{factory_for(counters), {.max_connections = 3}, ManualClock{}};
  std::optional<Pool::Lease> a{pool.acquire()};
  std::optional<Pool::Lease> b{pool.acquire()};
  std::optional<Pool::Lease> c{pool.acquire()};
  a.reset();
  b.reset();
  pool.close();
  CHECK(counters.closed == 2);
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 0, 1, 3, 0, 2});

  try {
    auto lease = pool.acquire();
    FAIL("acquire() after close() succeeded");
  } catch (const bulwark::pool_exhausted_error&) {
    FAIL("a closed pool is not an exhausted one");
  } catch (const bulwark::error& e) {
    CHECK(std::string(e.what()) == "bulwark: connection pool is closed");
  }
  CHECK_THROWS_WITH(pool.execute([](Conn& conn) { return conn.id(); }),
                    "bulwark: connection pool is closed");

  CHECK((*c)->id() == 3);  // a lent connection stays usable
  CHECK(counters.closed == 2);
  c.reset();
  CHECK(counters.closed == 3);
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{0, 0, 0, 3, 0, 3});
  pool.close();  // idempotent
  CHECK(counters.closed == 3);
}

TEST_CASE("close() wakes the waiters, which fail", "[connection_pool][threads]") {
  WatchedClock clock;
  const Watchdog watchdog{clock};
  Counters counters;
  WatchedPool pool{factory_for(counters), {.max_connections = 1}, clock};
  std::optional<WatchedPool::Lease> held{pool.acquire()};
  std::vector<std::string> errors(2);
  std::vector<std::jthread> waiters;
  for (int k = 0; k < 2; ++k) {
    waiters.emplace_back([&, k] {
      try {
        auto lease = pool.acquire();
        errors[k] = "got a lease";
      } catch (const bulwark::pool_exhausted_error&) {
        errors[k] = "pool_exhausted_error";
      } catch (const bulwark::error& e) {
        errors[k] = e.what();
      }
    });
    REQUIRE(eventually([&] { return clock.waiting() == k + 1; }));
  }
  pool.close();
  for (auto& waiter : waiters) waiter.join();
  CHECK(errors == std::vector<std::string>(2, "bulwark: connection pool is closed"));
  CHECK(counters.closed == 0);
  held.reset();
  CHECK(counters.closed == 1);
  CHECK_FALSE(watchdog.fired());
}

TEST_CASE("the connection type may be move-only and the pool movable", "[connection_pool]") {
  using Pointer = std::unique_ptr<int>;
  ConnectionPool<Pointer, ManualClock> pool{
      [] { return std::make_unique<int>(7); }, {}, ManualClock{}};
  static_assert(std::is_nothrow_move_constructible_v<ConnectionPool<Pointer>>);
  CHECK(pool.execute([](Pointer& p) { return *p; }) == 7);
  auto lease = pool.acquire();
  **lease = 8;
  auto moved = std::move(pool);
  { auto returning = std::move(lease); }  // returns to the state the moved-to pool now owns
  auto again = moved.acquire();
  CHECK(**again == 8);
  CHECK(fields(moved.metrics()) == std::array<std::size_t, 6>{1, 0, 1, 1, 2, 0});
}

TEST_CASE("the connection type is deduced from the factory", "[connection_pool]") {
  bulwark::ConnectionPool plain{[] { return 42; }};
  static_assert(std::is_same_v<decltype(plain), ConnectionPool<int>>);
  bulwark::ConnectionPool manual{[] { return 42; }, {.max_connections = 2}, ManualClock{}};
  static_assert(std::is_same_v<decltype(manual), ConnectionPool<int, ManualClock>>);
  CHECK(manual.execute([](int& v) { return v; }) == 42);
  CHECK(manual.config().max_connections == 2);
}

TEST_CASE("metrics count every connection exactly", "[connection_pool]") {
  ManualClock clock;
  Counters counters;
  Pool pool{factory_for(counters),
            {.max_connections = 4, .idle_timeout = 4s, .max_lifetime = 60s},
            clock};
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{0, 0, 0, 0, 0, 0});
  std::optional<Pool::Lease> a{pool.acquire()};
  std::optional<Pool::Lease> b{pool.acquire()};
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{2, 0, 2, 2, 0, 0});
  a.reset();
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{2, 1, 1, 2, 0, 0});
  a.emplace(pool.acquire());
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{2, 0, 2, 2, 1, 0});
  b->discard();
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 0, 1, 2, 1, 1});
  a.reset();
  clock.advance(5s);
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 1, 0, 2, 1, 1});  // closed lazily
  a.emplace(pool.acquire());
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 0, 1, 3, 1, 2});
  const auto m = pool.metrics();
  CHECK(m.created == m.open + m.discarded);
  CHECK(counters.opened == 3);
  CHECK(counters.closed == 2);
}

TEST_CASE("every bad config field is named in its config_error", "[connection_pool]") {
  Counters counters;
  const auto make = [&](ConnectionPoolConfig config) {
    Pool pool{factory_for(counters), config, ManualClock{}};
  };
  CHECK_THROWS_AS(make({.max_connections = 0}), bulwark::config_error);
  CHECK_THROWS_WITH(make({.max_connections = 0}),
                    "ConnectionPoolConfig.max_connections must be at least 1, got 0");
  CHECK_THROWS_WITH(make({.idle_timeout = 0ms}),
                    "ConnectionPoolConfig.idle_timeout must be above 0, got 0ms");
  CHECK_THROWS_WITH(make({.max_lifetime = -5ms}),
                    "ConnectionPoolConfig.max_lifetime must be above 0, got -5ms");
  CHECK_THROWS_WITH(make({.acquire_timeout = 0ms}),
                    "ConnectionPoolConfig.acquire_timeout must be above 0, got 0ms");
  CHECK_THROWS_AS(Pool(std::function<Conn()>{}, {}, ManualClock{}), bulwark::config_error);
  CHECK_THROWS_WITH(Pool(std::function<Conn()>{}, {}, ManualClock{}),
                    "ConnectionPool.factory must not be empty, got an empty std::function");
  CHECK_NOTHROW(make(
      {.max_connections = 1, .idle_timeout = 1ms, .max_lifetime = 1ms, .acquire_timeout = 1ms}));
  CHECK(counters.opened == 0);  // validation opens nothing
}

TEST_CASE("as a pipeline's last stage the pool calls f with the connection", "[connection_pool]") {
  ManualClock clock;
  Counters counters;
  Pool pool{factory_for(counters), {}, clock};
  bulwark::Pipeline stack{CountingPolicy{}, std::ref(pool)};
  CHECK(stack.execute([](Conn& c) { return c.id(); }) == 1);

  const auto deadline = clock.now() + 5s;
  CHECK(stack.execute(with_deadline(deadline), [&](Conn& c, const Context& ctx) {
    CHECK(ctx.deadline == deadline);
    return c.id() * 10;
  }) == 10);

  CHECK_THROWS_AS(stack.execute([](Conn&) -> int { throw upstream_failure{500}; }),
                  upstream_failure);
  CHECK(stack.get<0>().calls == 3);

  bulwark::Pipeline only{std::ref(pool)};
  CHECK(only.execute([](Conn& c) { return c.id(); }) == 2);  // 1 was discarded when f threw
  only.execute([](Conn&) {});                                // void results pass through
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 1, 0, 2, 3, 1});
}

TEST_CASE("reusing an idle connection allocates nothing", "[connection_pool]") {
  ManualClock clock;
  Counters counters;
  Pool pool{factory_for(counters), {.max_connections = 4}, clock};
  {
    auto a = pool.acquire();
    auto b = pool.acquire();
  }
  const bulwark::test::AllocationCounter allocations;
  for (int i = 0; i < 1000; ++i) {
    pool.execute([](Conn& c) { return c.id(); });
    auto lease = pool.acquire();
    clock.advance(1ms);
  }
  CHECK(allocations.count() == 0);
  CHECK(pool.metrics().reused == 2000);
}

TEST_CASE("max_connections is never exceeded under real threads", "[connection_pool][threads]") {
  Counters counters;
  constexpr int max_connections = 3;
  constexpr int threads = 8;
  constexpr int calls_per_thread = 300;
  // ManualClock, never advanced (but by the watchdog): waiters wait until served.
  ManualClock clock;
  const Watchdog watchdog{clock};
  Pool pool{factory_for(counters), {.max_connections = max_connections}, clock};
  std::atomic<int> in_flight{0};
  std::atomic<int> peak{0};
  std::atomic<int> too_many_open{0};
  std::atomic<int> failures{0};
  std::atomic<int> rejections{0};
  {
    std::vector<std::jthread> workers;
    workers.reserve(threads);
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < calls_per_thread; ++i) {
          try {
            pool.execute([&](Conn&) {
              const int now = ++in_flight;
              int seen = peak.load();
              while (now > seen && !peak.compare_exchange_weak(seen, now)) {
              }
              if (counters.opened - counters.closed > max_connections) ++too_many_open;
              --in_flight;
              if ((i + t) % 7 == 0) throw upstream_failure{i};
            });
          } catch (const upstream_failure&) {
            ++failures;
          } catch (const bulwark::error&) {
            ++rejections;
          }
        }
      });
    }
  }
  CHECK_FALSE(watchdog.fired());
  CHECK(rejections == 0);
  CHECK(peak <= max_connections);
  CHECK(peak >= 1);
  CHECK(too_many_open == 0);
  const auto m = pool.metrics();
  CHECK(m.in_use == 0);
  CHECK(m.open == m.idle);
  CHECK(m.open <= static_cast<std::size_t>(max_connections));
  CHECK(m.created == m.open + m.discarded);
  CHECK(m.created + m.reused == static_cast<std::size_t>(threads * calls_per_thread));
  CHECK(m.discarded == static_cast<std::size_t>(failures.load()));
  CHECK(counters.opened == static_cast<int>(m.created));
  CHECK(counters.closed == static_cast<int>(m.discarded));
}

// --- events ----------------------------------------------------------------------------------

namespace {

using bulwark::test::EventLog;
using bulwark::test::Seen;

// How one acquire() on another thread ended: the connection's id, or 0 for pool_exhausted_error,
// -1 for cancelled_error, -2 for anything else.
int acquire_outcome(WatchedPool& pool, const Context& ctx) {
  try {
    return pool.acquire(ctx)->id();
  } catch (const bulwark::pool_exhausted_error&) {
    return 0;
  } catch (const bulwark::cancelled_error&) {
    return -1;
  } catch (...) {
    return -2;
  }
}

}  // namespace

TEST_CASE("on_event reports a served wait and an exhausted one with the time waited",
          "[connection_pool][events][threads]") {
  WatchedClock clock;
  const Watchdog watchdog{clock};
  EventLog log;
  Counters counters;
  WatchedPool pool{factory_for(counters),
                   {.max_connections = 1, .acquire_timeout = 2s, .on_event = log.listener()},
                   clock};
  // Opening a connection and reusing an idle one: no wait, no event.
  CHECK(pool.acquire()->id() == 1);
  std::optional<WatchedPool::Lease> held{pool.acquire()};
  CHECK(log.seen().empty());

  int served = -3;
  std::jthread waiter{[&] { served = acquire_outcome(pool, {}); }};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  clock.advance(500ms);
  held.reset();  // handed to the waiter after 500 ms
  waiter.join();
  CHECK(served == 1);

  held.emplace(pool.acquire());
  int timed_out = -3;
  std::jthread late{[&] { timed_out = acquire_outcome(pool, {}); }};
  REQUIRE(eventually([&] { return clock.waits() == 2; }));
  clock.advance(2s);
  late.join();
  CHECK(timed_out == 0);

  // Cancelled, waiting or at once: nothing.
  std::stop_source stop;
  int cancelled = -3;
  std::jthread stopped{[&] { cancelled = acquire_outcome(pool, with_stop(stop.get_token())); }};
  REQUIRE(eventually([&] { return clock.waits() == 3; }));
  stop.request_stop();
  stopped.join();
  CHECK(cancelled == -1);
  CHECK_THROWS_AS(pool.acquire(no_wait()), bulwark::cancelled_error);

  CHECK(log.seen() == std::vector<Seen>{{bulwark::EventType::pool_waited, 500ms},
                                        {bulwark::EventType::pool_exhausted, 2s}});
  CHECK_FALSE(watchdog.fired());
}

TEST_CASE("a place freed for a waiter is reported as pool_waited",
          "[connection_pool][events][threads]") {
  WatchedClock clock;
  const Watchdog watchdog{clock};
  EventLog log;
  Counters counters;
  WatchedPool pool{
      factory_for(counters), {.max_connections = 1, .on_event = log.listener()}, clock};
  auto held = pool.acquire();
  int served = -3;
  std::jthread waiter{[&] { served = acquire_outcome(pool, {}); }};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  clock.advance(30ms);
  held.discard();  // the waiter opens a connection of its own
  waiter.join();
  CHECK(served == 2);
  CHECK(log.seen() == std::vector<Seen>{{bulwark::EventType::pool_waited, 30ms}});
  CHECK_FALSE(watchdog.fired());
}

TEST_CASE("a throwing pool listener changes no outcome and leaks no connection",
          "[connection_pool][events][threads]") {
  WatchedClock clock;
  const Watchdog watchdog{clock};
  std::atomic<int> heard{0};
  Counters counters;
  WatchedPool pool{factory_for(counters),
                   {.max_connections = 1,
                    .acquire_timeout = 2s,
                    .on_event =
                        [&heard](const bulwark::Event&) {
                          ++heard;
                          throw std::runtime_error("listener bug");
                        }},
                   clock};
  std::optional<WatchedPool::Lease> held{pool.acquire()};
  int timed_out = -3;
  std::jthread late{[&] { timed_out = acquire_outcome(pool, {}); }};
  REQUIRE(eventually([&] { return clock.waiting() == 1; }));
  clock.advance(2s);
  late.join();
  CHECK(timed_out == 0);

  int served = -3;
  std::jthread waiter{[&] { served = acquire_outcome(pool, {}); }};
  REQUIRE(eventually([&] { return clock.waits() == 2; }));
  held.reset();
  waiter.join();
  CHECK(served == 1);
  CHECK(heard == 2);
  // Everything came back: one idle connection, reused by the next call.
  CHECK(fields(pool.metrics()) == std::array<std::size_t, 6>{1, 1, 0, 1, 1, 0});
  CHECK(pool.acquire(no_wait())->id() == 1);
  CHECK_FALSE(watchdog.fired());
}
