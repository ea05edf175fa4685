// Tests for bulwark/circuit_breaker.hpp: every transition under ManualClock, the rolling window,
// half-open probe limits and exact counts under real threads.
#include <bulwark/circuit_breaker.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <barrier>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/allocations.hpp"

using namespace std::chrono_literals;
using bulwark::CircuitBreaker;
using bulwark::CircuitBreakerConfig;
using bulwark::CircuitState;
using bulwark::ManualClock;

namespace {

struct Reply {
  int status = 200;
};

}  // namespace

template <>
struct bulwark::failure_traits<Reply> {
  static bool is_failure(const Reply& reply) { return reply.status >= 500; }
};

namespace {

using Breaker = CircuitBreaker<ManualClock>;

void fail(Breaker& breaker) {
  try {
    breaker.execute([]() -> int { throw std::runtime_error("upstream down"); });
  } catch (const std::runtime_error&) {
  }
}

void succeed(Breaker& breaker) {
  breaker.execute([] { return 1; });
}

bool rejects(Breaker& breaker) {
  try {
    breaker.execute([] { return 1; });
    return false;
  } catch (const bulwark::circuit_open_error&) {
    return true;
  }
}

CircuitBreakerConfig small_config() {
  return {.failure_threshold = 3,
          .success_threshold = 2,
          .open_timeout = 10s,
          .monitoring_period = 60s};
}

}  // namespace

TEST_CASE("a new breaker is closed and lets calls through", "[circuit_breaker]") {
  Breaker breaker{small_config(), ManualClock{}};
  CHECK(breaker.state() == CircuitState::closed);
  CHECK(breaker.execute([] { return 42; }) == 42);
  const auto m = breaker.metrics();
  CHECK(m.successes == 1);
  CHECK(m.consecutive_successes == 1);
  CHECK(m.failures == 0);
  CHECK_FALSE(m.last_failure_time.has_value());
}

TEST_CASE("failure_threshold failures within the window open the circuit", "[circuit_breaker]") {
  ManualClock clock;
  Breaker breaker{small_config(), clock};
  fail(breaker);
  fail(breaker);
  CHECK(breaker.state() == CircuitState::closed);
  fail(breaker);
  CHECK(breaker.state() == CircuitState::open);
  const auto m = breaker.metrics();
  CHECK(m.failures == 3);
  CHECK(m.consecutive_failures == 3);
  CHECK(m.last_failure_time == clock.now());
  CHECK(m.last_state_change == clock.now());
}

TEST_CASE("an open circuit rejects without calling and hints the time left", "[circuit_breaker]") {
  ManualClock clock;
  Breaker breaker{small_config(), clock};
  for (int i = 0; i < 3; ++i) fail(breaker);
  clock.advance(4s);
  int calls = 0;
  try {
    breaker.execute([&] { ++calls; });
    FAIL("an open circuit let a call through");
  } catch (const bulwark::circuit_open_error& e) {
    CHECK(e.retry_after() == 6s);
    CHECK(std::string(e.what()).find("open") != std::string::npos);
  }
  CHECK(calls == 0);
}

TEST_CASE("open turns half_open once open_timeout has elapsed, even before a call",
          "[circuit_breaker]") {
  ManualClock clock;
  Breaker breaker{small_config(), clock};
  for (int i = 0; i < 3; ++i) fail(breaker);
  clock.advance(10s - 1ns);
  CHECK(breaker.state() == CircuitState::open);
  clock.advance(1ns);
  CHECK(breaker.state() == CircuitState::half_open);
  CHECK(breaker.metrics().state == CircuitState::half_open);
}

TEST_CASE("success_threshold probe successes close the circuit", "[circuit_breaker]") {
  ManualClock clock;
  Breaker breaker{small_config(), clock};
  for (int i = 0; i < 3; ++i) fail(breaker);
  clock.advance(10s);
  succeed(breaker);
  CHECK(breaker.state() == CircuitState::half_open);
  CHECK(breaker.metrics().consecutive_successes == 1);
  succeed(breaker);
  CHECK(breaker.state() == CircuitState::closed);
  const auto m = breaker.metrics();
  CHECK(m.failures == 0);
  CHECK(m.consecutive_failures == 0);
}

TEST_CASE("a failure while half_open reopens the circuit for another open_timeout",
          "[circuit_breaker]") {
  ManualClock clock;
  Breaker breaker{small_config(), clock};
  for (int i = 0; i < 3; ++i) fail(breaker);
  clock.advance(10s);
  succeed(breaker);
  fail(breaker);
  CHECK(breaker.state() == CircuitState::open);
  clock.advance(9s);
  CHECK(rejects(breaker));
  clock.advance(1s);
  CHECK(breaker.state() == CircuitState::half_open);
}

TEST_CASE("failures older than monitoring_period are forgotten", "[circuit_breaker]") {
  ManualClock clock;
  Breaker breaker{small_config(), clock};  // 60 s window, threshold 3
  fail(breaker);
  fail(breaker);
  SECTION("well inside the window they still count") {
    clock.advance(50s);
    CHECK(breaker.metrics().failures == 2);
    fail(breaker);
    CHECK(breaker.state() == CircuitState::open);
  }
  SECTION("past 1.1 x monitoring_period they no longer count") {
    clock.advance(66s);
    CHECK(breaker.metrics().failures == 0);
    fail(breaker);
    CHECK(breaker.state() == CircuitState::closed);
  }
}

TEST_CASE("a failure stops counting between 0.9 and 1.1 monitoring_period after it",
          "[circuit_breaker]") {
  ManualClock clock;
  const auto offset = GENERATE(0ms, 1ms, 777ms, 3'999ms, 5'555ms);
  clock.advance(offset);
  Breaker breaker{{.failure_threshold = 100, .monitoring_period = 60s}, clock};
  fail(breaker);
  clock.advance(54s - 1ms);  // just under 0.9 x: must still count
  CHECK(breaker.metrics().failures == 1);
  clock.advance(66s - 54s + 1ms);  // 1.1 x: must be gone
  CHECK(breaker.metrics().failures == 0);
}

TEST_CASE("a storm of a million failures neither allocates nor grows the breaker",
          "[circuit_breaker]") {
  ManualClock clock;
  Breaker breaker{{.failure_threshold = 2'000'000, .monitoring_period = 60s}, clock};
  const bulwark::test::AllocationCounter allocations;
  for (int i = 0; i < 1'000'000; ++i) {
    breaker.execute([] { return Reply{503}; });
    if (i % 1000 == 0) clock.advance(1ms);
  }
  CHECK(allocations.count() == 0);
  CHECK(breaker.metrics().failures == 1'000'000);
  CHECK(breaker.state() == CircuitState::closed);
  clock.advance(70s);
  CHECK(breaker.metrics().failures == 0);
}

TEST_CASE("a returned value that failure_traits marks failed counts as a failure",
          "[circuit_breaker]") {
  Breaker breaker{small_config(), ManualClock{}};
  for (int i = 0; i < 3; ++i) CHECK(breaker.execute([] { return Reply{503}; }).status == 503);
  CHECK(breaker.state() == CircuitState::open);
}

TEST_CASE("an exception that is_failure rejects counts as a success and is rethrown",
          "[circuit_breaker]") {
  auto config = small_config();
  config.is_failure = [](const std::exception& e) {
    return dynamic_cast<const std::logic_error*>(&e) == nullptr;
  };
  Breaker breaker{config, ManualClock{}};
  for (int i = 0; i < 5; ++i) {
    CHECK_THROWS_AS(breaker.execute([]() -> int { throw std::logic_error("404"); }),
                    std::logic_error);
  }
  CHECK(breaker.state() == CircuitState::closed);
  CHECK(breaker.metrics().successes == 5);
  for (int i = 0; i < 3; ++i) fail(breaker);
  CHECK(breaker.state() == CircuitState::open);
}

TEST_CASE("bulwark's own rejections never count as upstream failures", "[circuit_breaker]") {
  Breaker breaker{small_config(), ManualClock{}};
  for (int i = 0; i < 10; ++i) {
    CHECK_THROWS_AS(breaker.execute([]() -> int { throw bulwark::deadline_exceeded_error(); }),
                    bulwark::deadline_exceeded_error);
  }
  const auto m = breaker.metrics();
  CHECK(m.state == CircuitState::closed);
  CHECK(m.failures == 0);
  CHECK(m.successes == 0);
}

TEST_CASE("non-standard exceptions count as failures and pass through", "[circuit_breaker]") {
  Breaker breaker{small_config(), ManualClock{}};
  for (int i = 0; i < 3; ++i) CHECK_THROWS_AS(breaker.execute([]() -> int { throw 7; }), int);
  CHECK(breaker.state() == CircuitState::open);
}

TEST_CASE("a success resets consecutive failures but not the window", "[circuit_breaker]") {
  Breaker breaker{small_config(), ManualClock{}};
  fail(breaker);
  fail(breaker);
  succeed(breaker);
  auto m = breaker.metrics();
  CHECK(m.consecutive_failures == 0);
  CHECK(m.consecutive_successes == 1);
  CHECK(m.failures == 2);
  fail(breaker);  // third failure within the window
  m = breaker.metrics();
  CHECK(m.state == CircuitState::open);
  CHECK(m.consecutive_successes == 0);
}

TEST_CASE("half_open admits at most half_open_max_calls probes at a time", "[circuit_breaker]") {
  ManualClock clock;
  auto config = small_config();
  config.half_open_max_calls = 1;
  config.success_threshold = 2;
  Breaker breaker{config, clock};
  for (int i = 0; i < 3; ++i) fail(breaker);
  clock.advance(10s);
  bool inner_rejected = false;
  breaker.execute([&] { inner_rejected = rejects(breaker); });  // a second probe while one runs
  CHECK(inner_rejected);
  CHECK(breaker.state() == CircuitState::half_open);
  succeed(breaker);  // the first probe finished, so another may run
  CHECK(breaker.state() == CircuitState::closed);
}

TEST_CASE("half_open_max_calls 0 means success_threshold probes", "[circuit_breaker]") {
  ManualClock clock;
  Breaker breaker{small_config(), clock};  // success_threshold 2
  for (int i = 0; i < 3; ++i) fail(breaker);
  clock.advance(10s);
  int admitted = 0;
  bool third_rejected = false;
  breaker.execute([&] {
    ++admitted;
    breaker.execute([&] {
      ++admitted;
      third_rejected = rejects(breaker);
    });
  });
  CHECK(admitted == 2);
  CHECK(third_rejected);
}

TEST_CASE("an abandoned probe gives its place back", "[circuit_breaker]") {
  ManualClock clock;
  auto config = small_config();
  config.half_open_max_calls = 1;
  Breaker breaker{config, clock};
  for (int i = 0; i < 3; ++i) fail(breaker);
  clock.advance(10s);
  CHECK_THROWS_AS(breaker.execute([]() -> int { throw bulwark::cancelled_error(); }),
                  bulwark::cancelled_error);
  CHECK(breaker.state() == CircuitState::half_open);
  succeed(breaker);  // would be rejected if the cancelled probe still held the only place
  CHECK(breaker.metrics().consecutive_successes == 1);
}

TEST_CASE("isolate holds the circuit open until reset", "[circuit_breaker]") {
  ManualClock clock;
  Breaker breaker{small_config(), clock};
  breaker.isolate();
  CHECK(breaker.state() == CircuitState::open);
  clock.advance(1h);
  CHECK(breaker.state() == CircuitState::open);
  CHECK(rejects(breaker));
  breaker.reset();
  CHECK(breaker.state() == CircuitState::closed);
  succeed(breaker);
}

TEST_CASE("reset closes the circuit and forgets every count", "[circuit_breaker]") {
  ManualClock clock;
  Breaker breaker{small_config(), clock};
  succeed(breaker);
  for (int i = 0; i < 3; ++i) fail(breaker);
  clock.advance(1s);
  breaker.reset();
  const auto m = breaker.metrics();
  CHECK(m.state == CircuitState::closed);
  CHECK(m.failures == 0);
  CHECK(m.successes == 0);
  CHECK(m.consecutive_failures == 0);
  CHECK(m.consecutive_successes == 0);
  CHECK(m.last_state_change == clock.now());
}

TEST_CASE("on_state_change sees every transition in order", "[circuit_breaker]") {
  ManualClock clock;
  std::vector<std::pair<CircuitState, CircuitState>> seen;
  auto config = small_config();
  config.on_state_change = [&](CircuitState from, CircuitState to) { seen.emplace_back(from, to); };
  Breaker breaker{config, clock};
  for (int i = 0; i < 3; ++i) fail(breaker);
  clock.advance(10s);
  succeed(breaker);
  fail(breaker);
  clock.advance(10s);
  succeed(breaker);
  succeed(breaker);
  breaker.isolate();
  breaker.reset();
  using S = CircuitState;
  const std::vector<std::pair<S, S>> expected{{S::closed, S::open},      {S::open, S::half_open},
                                              {S::half_open, S::open},   {S::open, S::half_open},
                                              {S::half_open, S::closed}, {S::closed, S::open},
                                              {S::open, S::closed}};
  CHECK(seen == expected);
}

TEST_CASE("on_state_change may call back into the breaker", "[circuit_breaker]") {
  ManualClock clock;
  std::vector<CircuitState> observed;
  Breaker* self = nullptr;
  auto config = small_config();
  config.on_state_change = [&](CircuitState, CircuitState) {
    observed.push_back(self->metrics().state);
  };
  Breaker breaker{config, clock};
  self = &breaker;
  for (int i = 0; i < 3; ++i) fail(breaker);
  CHECK(observed == std::vector<CircuitState>{CircuitState::open});
}

TEST_CASE("results pass through: values, void, move-only and references", "[circuit_breaker]") {
  Breaker breaker{small_config(), ManualClock{}};
  auto owned = breaker.execute([] { return std::make_unique<int>(5); });
  CHECK(*owned == 5);
  int target = 1;
  int& ref = breaker.execute([&]() -> int& { return target; });
  CHECK(&ref == &target);
  breaker.execute([](const bulwark::Context& ctx) { CHECK(ctx.idempotent); });
  int moved_from = 9;
  int&& rvalue = breaker.execute([&]() -> int&& { return std::move(moved_from); });
  CHECK(&rvalue == &moved_from);
}

TEST_CASE("every bad breaker config is a config_error naming the field", "[circuit_breaker]") {
  using Catch::Matchers::Equals;
  CHECK_THROWS_WITH(Breaker({.failure_threshold = 0}, ManualClock{}),
                    Equals("CircuitBreakerConfig.failure_threshold must be at least 1, got 0"));
  CHECK_THROWS_WITH(Breaker({.success_threshold = 0}, ManualClock{}),
                    Equals("CircuitBreakerConfig.success_threshold must be at least 1, got 0"));
  CHECK_THROWS_WITH(Breaker({.open_timeout = 0ms}, ManualClock{}),
                    Equals("CircuitBreakerConfig.open_timeout must be above 0, got 0ms"));
  CHECK_THROWS_WITH(Breaker({.monitoring_period = -5ms}, ManualClock{}),
                    Equals("CircuitBreakerConfig.monitoring_period must be above 0, got -5ms"));
  CHECK_THROWS_WITH(
      Breaker({.open_timeout = std::chrono::milliseconds::max()}, ManualClock{}),
      Equals(
          "CircuitBreakerConfig.open_timeout must be at most 365 days, got 9223372036854775807ms"));
  CHECK_THROWS_WITH(
      Breaker({.monitoring_period = 366 * 24h}, ManualClock{}),
      Equals("CircuitBreakerConfig.monitoring_period must be at most 365 days, got 31622400000ms"));
  CHECK_THROWS_AS(Breaker({.failure_threshold = 0}, ManualClock{}), bulwark::config_error);
}

TEST_CASE("concurrent calls from several threads are counted exactly",
          "[circuit_breaker][threads]") {
  ManualClock clock;
  Breaker breaker{{.failure_threshold = 1'000'000, .monitoring_period = 60s}, clock};
  constexpr int threads = 4;
  constexpr int per_thread = 20'000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        if ((i + t) % 4 == 0) {
          breaker.execute([] { return Reply{500}; });
        } else {
          breaker.execute([] { return Reply{200}; });
        }
      }
    });
  }
  for (auto& thread : pool) thread.join();
  const auto m = breaker.metrics();
  CHECK(m.failures == threads * per_thread / 4);
  CHECK(m.successes == threads * per_thread * 3 / 4);
  CHECK(m.state == CircuitState::closed);
}

TEST_CASE("more threads than stripes still count exactly", "[circuit_breaker][threads]") {
  Breaker breaker{small_config(), ManualClock{}};
  constexpr int threads = 24;  // more than the 16 owned stripes: the rest share
  constexpr int per_thread = 2'000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) succeed(breaker);
    });
  }
  for (auto& thread : pool) thread.join();
  CHECK(breaker.metrics().successes == threads * per_thread);
}

TEST_CASE("half_open lets exactly half_open_max_calls probes through under real threads",
          "[circuit_breaker][threads]") {
  ManualClock clock;
  auto config = small_config();
  config.half_open_max_calls = 2;
  config.success_threshold = 5;
  Breaker breaker{config, clock};
  for (int i = 0; i < 3; ++i) fail(breaker);
  clock.advance(10s);
  constexpr int threads = 8;
  std::atomic<int> admitted{0};
  std::atomic<int> rejected{0};
  std::atomic<int> in_probe{0};
  std::atomic<int> peak{0};
  std::atomic<int> finished_attempts{0};
  std::barrier start{threads};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      start.arrive_and_wait();
      try {
        breaker.execute([&] {
          ++admitted;
          const int now = ++in_probe;
          int seen = peak.load();
          while (now > seen && !peak.compare_exchange_weak(seen, now)) {
          }
          // Hold the probe until every other thread has tried (bounded, should the limit break).
          const auto give_up = std::chrono::steady_clock::now() + 2s;
          while (finished_attempts.load() < threads - 2 &&
                 std::chrono::steady_clock::now() < give_up) {
            std::this_thread::yield();
          }
          --in_probe;
        });
      } catch (const bulwark::circuit_open_error&) {
        ++rejected;
        ++finished_attempts;
      }
    });
  }
  for (auto& thread : pool) thread.join();
  CHECK(admitted == 2);
  CHECK(rejected == threads - 2);
  CHECK(peak == 2);
  CHECK(breaker.state() == CircuitState::half_open);
}

TEST_CASE("a breaker opened by one thread rejects calls from all threads",
          "[circuit_breaker][threads]") {
  ManualClock clock;
  Breaker breaker{small_config(), clock};
  std::atomic<int> rejected{0};
  std::atomic<int> ran{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t) {
    pool.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        try {
          breaker.execute([&]() -> int {
            ++ran;
            throw std::runtime_error("down");
          });
        } catch (const bulwark::circuit_open_error&) {
          ++rejected;
        } catch (const std::runtime_error&) {
        }
      }
    });
  }
  for (auto& thread : pool) thread.join();
  CHECK(breaker.state() == CircuitState::open);
  CHECK(ran + rejected == 2000);
  CHECK(ran >= 3);
  CHECK(
      ran <=
      3 + 3);  // besides the three that opened it, at most one call per other thread was in flight
}

TEST_CASE("a failure recorded right after the circuit closes counts for a whole window",
          "[circuit_breaker][issue-6]") {
  // Found by the model test: clearing the window on close lost the next failure's bucket.
  ManualClock clock;
  Breaker breaker{
      {.failure_threshold = 3, .success_threshold = 2, .open_timeout = 1s, .monitoring_period = 5s},
      clock};
  for (int i = 0; i < 3; ++i) fail(breaker);
  clock.advance(1647ms);
  succeed(breaker);
  succeed(breaker);
  REQUIRE(breaker.state() == CircuitState::closed);
  fail(breaker);
  clock.advance(1447ms);
  CHECK(breaker.metrics().failures == 1);
}

TEST_CASE("on_event reports state changes and rejections", "[circuit_breaker][events]") {
  ManualClock clock;
  std::vector<bulwark::Event> events;
  auto config = small_config();
  config.on_event = [&](const bulwark::Event& e) { events.push_back(e); };
  Breaker breaker{config, clock};
  for (int i = 0; i < 3; ++i) fail(breaker);
  clock.advance(4s);
  CHECK(rejects(breaker));
  REQUIRE(events.size() == 2);
  CHECK(events[0].type == bulwark::EventType::circuit_state_changed);
  CHECK(events[0].from == CircuitState::closed);
  CHECK(events[0].to == CircuitState::open);
  CHECK(events[1].type == bulwark::EventType::circuit_rejected);
  CHECK(events[1].delay == 6s);
}

TEST_CASE("a throwing listener cannot break the breaker", "[circuit_breaker][events]") {
  auto config = small_config();
  config.on_event = [](const bulwark::Event&) { throw std::runtime_error("listener bug"); };
  config.on_state_change = [](CircuitState, CircuitState) {
    throw std::runtime_error("listener bug");
  };
  Breaker breaker{config, ManualClock{}};
  for (int i = 0; i < 3; ++i) fail(breaker);
  CHECK(breaker.state() == CircuitState::open);
  CHECK(rejects(breaker));
}
