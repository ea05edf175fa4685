// Tests of bulwark/retry.hpp: attempt counts, backoff delays, classification, retry-after hints,
// deadlines, cancellation, idempotency, metrics and config validation.
#include <bulwark/retry.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <limits>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <bulwark/circuit_breaker.hpp>
#include <bulwark/pipeline.hpp>

#include "support/allocations.hpp"

using namespace std::chrono_literals;
using bulwark::Backoff;
using bulwark::Context;
using bulwark::ManualClock;
using bulwark::RetryConfig;
using bulwark::RetryStrategy;
using ms = std::chrono::milliseconds;

namespace {

// An upstream failure of the caller's own type; `attempt` tells which attempt threw it.
struct flaky_error : std::runtime_error {
  explicit flaky_error(int which)
      : std::runtime_error("flaky attempt " + std::to_string(which)), attempt(which) {}
  int attempt;
};

// An upstream failure that asks to be retried after `hint`.
struct throttled_error : std::runtime_error, bulwark::retry_hint {
  explicit throttled_error(ms after) : std::runtime_error("throttled"), hint(after) {}
  [[nodiscard]] ms retry_after() const noexcept override { return hint; }
  ms hint;
};

// A result that can be a failure without any exception.
struct Reply {
  int status = 0;
  int attempt = 0;
};

// Every sleep ManualClock recorded, in whole milliseconds.
std::vector<ms> sleeps_ms(const ManualClock& clock) {
  std::vector<ms> out;
  for (auto sleep : clock.sleeps()) out.push_back(std::chrono::duration_cast<ms>(sleep));
  return out;
}

// A ManualClock that counts how often the time is read.
struct CountingClock {
  using duration = ManualClock::duration;
  using time_point = ManualClock::time_point;
  ManualClock clock;
  std::shared_ptr<std::atomic<int>> reads = std::make_shared<std::atomic<int>>(0);
  [[nodiscard]] time_point now() const noexcept {
    ++*reads;
    return clock.now();
  }
  bool sleep_for(duration how_long, std::stop_token stop = {}) const {
    return clock.sleep_for(how_long, stop);
  }
};

// A clock whose sleeps return at once and record nothing (ManualClock's record allocates).
struct NoSleepClock {
  using duration = ManualClock::duration;
  using time_point = ManualClock::time_point;
  [[nodiscard]] time_point now() const noexcept { return {}; }
  bool sleep_for(duration /*how_long*/, std::stop_token stop = {}) const {
    return !stop.stop_requested();
  }
};

// Mimics an open breaker: passes calls through until `threshold` of them failed, then rejects
// every call with circuit_open_error without calling through.
struct FakeBreaker {
  std::size_t threshold;
  std::size_t failures = 0;
  template <class F>
  decltype(auto) execute(const Context& ctx, F&& next) {
    if (failures >= threshold) throw bulwark::circuit_open_error(60s);
    try {
      return next(ctx);
    } catch (...) {
      ++failures;
      throw;
    }
  }
};

const std::vector<std::string> seed_patterns{
    "ECONNRESET", "ETIMEDOUT", "ENOTFOUND", "ECONNREFUSED", "EAI_AGAIN", "socket hang up",
    "429",        "500",       "502",       "503",          "504"};

}  // namespace

template <>
struct bulwark::failure_traits<Reply> {
  static bool is_failure(const Reply& reply) { return reply.status >= 500; }
};

TEST_CASE("a first-attempt success is returned after exactly one call", "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{}, clock};
  int calls = 0;
  CHECK(retry.execute([&] { return ++calls * 10; }) == 10);
  CHECK(calls == 1);
  CHECK(clock.sleeps().empty());
}

TEST_CASE("a failing call is attempted max_attempts times and its last exception rethrown",
          "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{.max_attempts = 4}, clock};
  int calls = 0;
  try {
    retry.execute([&]() -> int { throw flaky_error(++calls); });
    FAIL("no exception");
  } catch (const flaky_error& e) {
    CHECK(e.attempt == 4);
    CHECK(std::string(e.what()) == "flaky attempt 4");
  }
  CHECK(calls == 4);
  CHECK(clock.sleeps().size() == 3);
}

TEST_CASE("a call that fails then succeeds returns the success", "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{.max_attempts = 5}, clock};
  int calls = 0;
  auto value = retry.execute([&] {
    if (++calls < 3) throw std::runtime_error("read ECONNRESET");
    return std::string("ok");
  });
  CHECK(value == "ok");
  CHECK(calls == 3);
  CHECK(clock.sleeps().size() == 2);

  SECTION("void callables too") {
    int void_calls = 0;
    retry.execute([&] {
      if (++void_calls < 2) throw std::runtime_error("boom");
    });
    CHECK(void_calls == 2);
  }
}

TEST_CASE("max_attempts = 1 makes one attempt and never sleeps", "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{.max_attempts = 1}, clock};
  int calls = 0;
  CHECK_THROWS_AS(retry.execute([&] {
    ++calls;
    throw flaky_error(calls);
  }),
                  flaky_error);
  CHECK(calls == 1);
  CHECK(clock.sleeps().empty());
}

TEST_CASE("the callable receives the context when it takes one", "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{}, clock};
  std::stop_source source;
  const Context ctx{.stop = source.get_token()};
  bool same = retry.execute(ctx, [&](const Context& c) { return c.stop == ctx.stop; });
  CHECK(same);
}

TEST_CASE("a returned reference is passed through, not copied", "[retry]") {
  RetryStrategy<ManualClock> retry{{}, ManualClock{}};
  int target = 7;
  int& ref = retry.execute([&]() -> int& { return target; });
  CHECK(&ref == &target);
}

// --- backoff delays ------------------------------------------------------------------------------

TEST_CASE("backoff_delay computes the seed formula exactly", "[retry]") {
  using bulwark::detail::backoff_delay;
  RetryConfig config;  // 100ms, x2, cap 5s, jitter 0.1
  CHECK(backoff_delay(config, 0, 0.0, 100ms) == 100ms);
  CHECK(backoff_delay(config, 0, 0.5, 100ms) == 105ms);
  CHECK(backoff_delay(config, 1, 0.99, 100ms) == 219ms);  // 200 + 19.8, floored
  CHECK(backoff_delay(config, 5, 0.0, 100ms) == 3200ms);
  CHECK(backoff_delay(config, 6, 0.0, 100ms) == 5000ms);       // 6400 capped
  CHECK(backoff_delay(config, 6, 0.5, 100ms) == 5250ms);       // jitter is added after the cap
  CHECK(backoff_delay(config, 1000, 0.999, 100ms) == 5499ms);  // pow overflows to inf; still capped

  RetryConfig odd{.initial_delay = 150ms, .backoff_multiplier = 1.5, .jitter_factor = 0.1};
  CHECK(backoff_delay(odd, 1, 0.3, 150ms) == 231ms);  // 225 + 6.75, floored

  RetryConfig flat{.jitter_factor = 0.0};
  CHECK(backoff_delay(flat, 3, 0.999, 100ms) == 800ms);
}

TEST_CASE("backoff_delay computes full and decorrelated jitter exactly", "[retry]") {
  using bulwark::detail::backoff_delay;
  RetryConfig full{.backoff = Backoff::full_jitter};
  CHECK(backoff_delay(full, 2, 0.0, 100ms) == 0ms);
  CHECK(backoff_delay(full, 2, 0.5, 100ms) == 200ms);  // U[0, 400)
  CHECK(backoff_delay(full, 2, 0.999999, 100ms) == 399ms);
  CHECK(backoff_delay(full, 20, 0.5, 100ms) == 2500ms);  // U[0, 5000): capped first

  RetryConfig decorrelated{.backoff = Backoff::decorrelated_jitter};
  CHECK(backoff_delay(decorrelated, 0, 0.0, 100ms) == 100ms);  // U[100, 300)
  CHECK(backoff_delay(decorrelated, 0, 0.5, 100ms) == 200ms);
  CHECK(backoff_delay(decorrelated, 3, 0.5, 1000ms) == 1550ms);  // U[100, 3000)
  CHECK(backoff_delay(decorrelated, 3, 0.9, 4000ms) == 5000ms);  // 10810 capped
}

TEST_CASE("recorded sleeps follow the seed formula's bounds, cap included, over many draws",
          "[retry]") {
  const RetryConfig config{.max_attempts = 9,
                           .initial_delay = 100ms,
                           .max_delay = 5s,
                           .backoff_multiplier = 2.0,
                           .jitter_factor = 0.1};
  bool jittered = false;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    ManualClock clock;
    RetryStrategy<ManualClock> retry{config, clock};
    RetryStrategy<ManualClock>::seed_random(seed);
    CHECK_THROWS_AS(retry.execute([]() -> int { throw flaky_error(0); }), flaky_error);
    auto sleeps = sleeps_ms(clock);
    REQUIRE(sleeps.size() == 8);
    for (std::size_t n = 0; n < sleeps.size(); ++n) {
      const ms base = std::min(ms{100 << n}, ms{5000});
      const ms most{base.count() + base.count() / 10};  // base * (1 + jitter_factor)
      CHECK(sleeps[n] >= base);
      CHECK(sleeps[n] < most);  // U[0, 1) never reaches 1
      if (sleeps[n] != base) jittered = true;
    }
  }
  CHECK(jittered);
}

TEST_CASE("recorded sleeps are the pure backoff of the thread's seeded draws", "[retry]") {
  const RetryConfig config{.max_attempts = 6};
  RetryStrategy<ManualClock>::seed_random(42);
  std::vector<ms> expected;
  for (std::size_t n = 0; n < 5; ++n) {
    expected.push_back(
        bulwark::detail::backoff_delay(config, n, bulwark::detail::retry_random_unit(), 100ms));
  }
  ManualClock clock;
  RetryStrategy<ManualClock> retry{config, clock};
  RetryStrategy<ManualClock>::seed_random(42);
  CHECK_THROWS_AS(retry.execute([]() -> int { throw flaky_error(0); }), flaky_error);
  CHECK(sleeps_ms(clock) == expected);
}

TEST_CASE("full jitter sleeps stay between 0 and min(max_delay, initial * multiplier^n)",
          "[retry]") {
  const RetryConfig config{
      .max_attempts = 9, .initial_delay = 100ms, .max_delay = 2s, .backoff = Backoff::full_jitter};
  bool varied = false;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    ManualClock clock;
    RetryStrategy<ManualClock> retry{config, clock};
    RetryStrategy<ManualClock>::seed_random(seed);
    CHECK_THROWS_AS(retry.execute([]() -> int { throw flaky_error(0); }), flaky_error);
    auto sleeps = sleeps_ms(clock);
    REQUIRE(sleeps.size() == 8);
    for (std::size_t n = 0; n < sleeps.size(); ++n) {
      const ms cap = std::min(ms{100 << n}, ms{2000});
      CHECK(sleeps[n] >= 0ms);
      CHECK(sleeps[n] < cap);
      if (sleeps[n] < cap / 2) varied = true;
    }
  }
  CHECK(varied);
}

TEST_CASE("decorrelated jitter sleeps stay between initial and min(max_delay, previous * 3)",
          "[retry]") {
  const RetryConfig config{.max_attempts = 12,
                           .initial_delay = 100ms,
                           .max_delay = 3s,
                           .backoff = Backoff::decorrelated_jitter};
  bool reached_cap = false;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    ManualClock clock;
    RetryStrategy<ManualClock> retry{config, clock};
    RetryStrategy<ManualClock>::seed_random(seed);
    CHECK_THROWS_AS(retry.execute([]() -> int { throw flaky_error(0); }), flaky_error);
    auto sleeps = sleeps_ms(clock);
    REQUIRE(sleeps.size() == 11);
    ms previous = 100ms;
    for (ms sleep : sleeps) {
      CHECK(sleep >= 100ms);
      CHECK(sleep <= std::min(ms{3000}, previous * 3 - 1ms));
      if (sleep == 3000ms) reached_cap = true;
      previous = sleep;
    }
  }
  CHECK(reached_cap);
}

// --- classification ------------------------------------------------------------------------------

TEST_CASE("bulwark's own rejections and config_error are rethrown at once by default", "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{.max_attempts = 5}, clock};
  int calls = 0;
  SECTION("circuit_open_error") {
    CHECK_THROWS_AS(retry.execute([&] {
      ++calls;
      throw bulwark::circuit_open_error(1ms);
    }),
                    bulwark::circuit_open_error);
  }
  SECTION("rate_limited_error") {
    CHECK_THROWS_AS(retry.execute([&] {
      ++calls;
      throw bulwark::rate_limited_error(1ms);
    }),
                    bulwark::rate_limited_error);
  }
  SECTION("pool_exhausted_error") {
    CHECK_THROWS_AS(retry.execute([&] {
      ++calls;
      throw bulwark::pool_exhausted_error();
    }),
                    bulwark::pool_exhausted_error);
  }
  SECTION("bulkhead_rejected_error") {
    CHECK_THROWS_AS(retry.execute([&] {
      ++calls;
      throw bulwark::bulkhead_rejected_error(bulwark::BulkheadRejection::queue_full);
    }),
                    bulwark::bulkhead_rejected_error);
  }
  SECTION("bulwark::error itself") {
    CHECK_THROWS_AS(retry.execute([&] {
      ++calls;
      throw bulwark::error("no");
    }),
                    bulwark::error);
  }
  SECTION("config_error") {
    CHECK_THROWS_AS(retry.execute([&] {
      ++calls;
      throw bulwark::config_error("bad");
    }),
                    bulwark::config_error);
  }
  CHECK(calls == 1);
  CHECK(clock.sleeps().empty());
}

TEST_CASE("a custom retry_on decides which exceptions are retried", "[retry]") {
  ManualClock clock;
  RetryConfig config{.max_attempts = 4};
  config.retry_on = [](const std::exception& e) {
    return dynamic_cast<const flaky_error*>(&e) != nullptr;
  };
  RetryStrategy<ManualClock> retry{config, clock};
  int calls = 0;
  SECTION("retried when it says yes") {
    CHECK_THROWS_AS(retry.execute([&] { throw flaky_error(++calls); }), flaky_error);
    CHECK(calls == 4);
  }
  SECTION("rethrown at once, type intact, when it says no") {
    CHECK_THROWS_AS(retry.execute([&] {
      ++calls;
      throw std::logic_error("bug");
    }),
                    std::logic_error);
    CHECK(calls == 1);
    CHECK(clock.sleeps().empty());
  }
}

TEST_CASE("a custom retry_on is asked about bulwark's own errors too", "[retry]") {
  ManualClock clock;
  RetryConfig config{.max_attempts = 3};
  config.retry_on = [](const std::exception&) { return true; };
  RetryStrategy<ManualClock> retry{config, clock};
  int calls = 0;
  CHECK_THROWS_AS(retry.execute([&] {
    ++calls;
    throw bulwark::pool_exhausted_error();
  }),
                  bulwark::pool_exhausted_error);
  CHECK(calls == 3);
}

TEST_CASE("non-std exceptions are retried by default but never by a custom retry_on", "[retry]") {
  ManualClock clock;
  int calls = 0;
  SECTION("default") {
    RetryStrategy<ManualClock> retry{{.max_attempts = 3}, clock};
    CHECK_THROWS_AS(retry.execute([&] {
      ++calls;
      throw 42;
    }),
                    int);
    CHECK(calls == 3);
  }
  SECTION("custom") {
    RetryConfig config{.max_attempts = 3};
    config.retry_on = [](const std::exception&) { return true; };
    RetryStrategy<ManualClock> retry{config, clock};
    CHECK_THROWS_AS(retry.execute([&] {
      ++calls;
      throw 42;
    }),
                    int);
    CHECK(calls == 1);
  }
}

TEST_CASE("retry_on_messages matches the seed's list case-insensitively within what()", "[retry]") {
  auto retry_on = bulwark::retry_on_messages(seed_patterns);
  for (const char* message :
       {"read ECONNRESET", "connect ETIMEDOUT 10.0.0.1:443",
        "getaddrinfo ENOTFOUND api.example.com", "connect ECONNREFUSED 127.0.0.1:80",
        "getaddrinfo EAI_AGAIN", "socket hang up", "Socket Hang Up", "read econnreset",
        "HTTP 429: Too Many Requests", "HTTP 500: Internal Server Error", "HTTP 502: Bad Gateway",
        "HTTP 503: Service Unavailable", "HTTP 504: Gateway Timeout"}) {
    INFO(message);
    CHECK(retry_on(std::runtime_error(message)));
  }
  for (const char* message :
       {"HTTP 404: Not Found", "HTTP 400: Bad Request", "EPIPE", "socket closed"}) {
    INFO(message);
    CHECK_FALSE(retry_on(std::runtime_error(message)));
  }
}

TEST_CASE("a strategy built on retry_on_messages retries matching messages only", "[retry]") {
  ManualClock clock;
  RetryConfig config{.max_attempts = 3};
  config.retry_on = bulwark::retry_on_messages(seed_patterns);
  RetryStrategy<ManualClock> retry{config, clock};
  int calls = 0;
  SECTION("HTTP 503 is retried") {
    CHECK_THROWS_AS(retry.execute([&] {
      ++calls;
      throw std::runtime_error("HTTP 503: Service Unavailable");
    }),
                    std::runtime_error);
    CHECK(calls == 3);
  }
  SECTION("HTTP 404 is not") {
    CHECK_THROWS_AS(retry.execute([&] {
      ++calls;
      throw std::runtime_error("HTTP 404: Not Found");
    }),
                    std::runtime_error);
    CHECK(calls == 1);
  }
}

TEST_CASE("retry_on_messages rejects an invalid pattern with config_error naming it", "[retry]") {
  CHECK_THROWS_WITH(
      bulwark::retry_on_messages({"ECONNRESET", "([a-"}),
      "retry_on_messages: pattern \"([a-\" is not a valid ECMAScript regular expression");
  CHECK_THROWS_AS(bulwark::retry_on_messages({"("}), bulwark::config_error);
  CHECK_NOTHROW(bulwark::retry_on_messages({}));
}

// --- failed values -------------------------------------------------------------------------------

TEST_CASE("a value failure_traits marks failed is retried and the last one returned", "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{.max_attempts = 3}, clock};
  int calls = 0;
  SECTION("recovers") {
    Reply reply = retry.execute([&] {
      ++calls;
      return Reply{calls < 3 ? 503 : 200, calls};
    });
    CHECK(reply.status == 200);
    CHECK(calls == 3);
    CHECK(retry.metrics().successes_after_retry == 1);
  }
  SECTION("runs out: the last failed value is returned, not thrown") {
    Reply reply = retry.execute([&] {
      ++calls;
      return Reply{503, calls};
    });
    CHECK(reply.status == 503);
    CHECK(reply.attempt == 3);
    CHECK(calls == 3);
    CHECK(clock.sleeps().size() == 2);
    CHECK(retry.metrics().exhausted == 1);
  }
  SECTION("a value that is not failed is not retried") {
    Reply reply = retry.execute([&] {
      ++calls;
      return Reply{404, calls};
    });
    CHECK(reply.status == 404);
    CHECK(calls == 1);
  }
}

// --- retry-after hints ---------------------------------------------------------------------------

TEST_CASE("a retry_hint longer than the backoff sets the sleep", "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{.max_attempts = 3}, clock};
  CHECK_THROWS_AS(retry.execute([]() -> int { throw throttled_error(700ms); }), throttled_error);
  CHECK(sleeps_ms(clock) == std::vector<ms>{700ms, 700ms});
}

TEST_CASE("a retry_hint shorter than the backoff leaves the backoff", "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{.max_attempts = 2, .jitter_factor = 0.0}, clock};
  CHECK_THROWS_AS(retry.execute([]() -> int { throw throttled_error(1ms); }), throttled_error);
  CHECK(sleeps_ms(clock) == std::vector<ms>{100ms});
}

TEST_CASE("a bulwark rejection's hint is honoured when a custom retry_on retries it", "[retry]") {
  ManualClock clock;
  RetryConfig config{.max_attempts = 2};
  config.retry_on = [](const std::exception&) { return true; };
  RetryStrategy<ManualClock> retry{config, clock};
  CHECK_THROWS_AS(retry.execute([]() -> int { throw bulwark::rate_limited_error(1200ms); }),
                  bulwark::rate_limited_error);
  CHECK(sleeps_ms(clock) == std::vector<ms>{1200ms});
}

TEST_CASE("a retry_hint beyond max_delay ends the retries at once with that error", "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{.max_attempts = 5, .max_delay = 5s}, clock};
  int calls = 0;
  CHECK_THROWS_AS(retry.execute([&]() -> int {
    ++calls;
    throw throttled_error(5001ms);
  }),
                  throttled_error);
  CHECK(calls == 1);
  CHECK(clock.sleeps().empty());
}

// --- deadline, cancellation, idempotency ---------------------------------------------------------

TEST_CASE("a retry never sleeps past the context's deadline and rethrows the last error",
          "[retry]") {
  ManualClock clock;
  const auto start = clock.now();
  RetryStrategy<ManualClock> retry{{.max_attempts = 10, .jitter_factor = 0.0}, clock};
  int calls = 0;
  SECTION("the third sleep would cross it") {  // sleeps 100, 200; the next (400) would end at 700
    const Context ctx{.deadline = start + 350ms};
    CHECK_THROWS_AS(retry.execute(ctx, [&]() -> int { throw flaky_error(++calls); }), flaky_error);
    CHECK(calls == 3);
    CHECK(sleeps_ms(clock) == std::vector<ms>{100ms, 200ms});
    CHECK(clock.now() < *ctx.deadline);
  }
  SECTION("a sleep ending exactly at the deadline is not taken") {
    const Context ctx{.deadline = start + 300ms};
    try {
      retry.execute(ctx, [&]() -> int { throw flaky_error(++calls); });
      FAIL("no exception");
    } catch (const flaky_error& e) {
      CHECK(e.attempt == 2);
    }
    CHECK(sleeps_ms(clock) == std::vector<ms>{100ms});
  }
  SECTION("a failed value is returned when the deadline stops the retries") {
    const Context ctx{.deadline = start + 50ms};
    Reply reply = retry.execute(ctx, [&] { return Reply{500, ++calls}; });
    CHECK(reply.attempt == 1);
    CHECK(clock.sleeps().empty());
  }
}

TEST_CASE("a stop requested before a retry ends the call with cancelled_error", "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{.max_attempts = 5}, clock};
  std::stop_source source;
  int calls = 0;
  SECTION("exception") {
    CHECK_THROWS_AS(retry.execute(Context{.stop = source.get_token()},
                                  [&]() -> int {
                                    ++calls;
                                    source.request_stop();
                                    throw flaky_error(calls);
                                  }),
                    bulwark::cancelled_error);
  }
  SECTION("even when the deadline would have ended the retries") {
    const Context ctx{.stop = source.get_token(), .deadline = clock.now() + 50ms};
    CHECK_THROWS_AS(retry.execute(ctx,
                                  [&]() -> int {
                                    ++calls;
                                    source.request_stop();
                                    throw flaky_error(calls);
                                  }),
                    bulwark::cancelled_error);
  }
  SECTION("failed value") {
    CHECK_THROWS_AS(retry.execute(Context{.stop = source.get_token()},
                                  [&] {
                                    ++calls;
                                    source.request_stop();
                                    return Reply{503, calls};
                                  }),
                    bulwark::cancelled_error);
  }
  CHECK(calls == 1);
  CHECK(clock.sleeps().empty());
}

TEST_CASE("a stop requested during a real sleep ends it within milliseconds", "[retry][threads]") {
  RetryStrategy<> retry{{.max_attempts = 2, .initial_delay = 10s, .max_delay = 10s}};
  std::stop_source source;
  std::atomic<bool> failed_once{false};
  std::jthread canceller{[&] {
    while (!failed_once.load()) std::this_thread::yield();
    std::this_thread::sleep_for(2ms);  // let the retry start its 10 s sleep
    source.request_stop();
  }};
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(retry.execute(Context{.stop = source.get_token()},
                                [&]() -> int {
                                  failed_once = true;
                                  throw flaky_error(1);
                                }),
                  bulwark::cancelled_error);
  CHECK(std::chrono::steady_clock::now() - start < 2s);  // generous for sanitizers; 10 s if broken
}

TEST_CASE("a non-idempotent call gets exactly one attempt", "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{.max_attempts = 5}, clock};
  int calls = 0;
  const Context once{.idempotent = false};
  CHECK_THROWS_AS(retry.execute(once, [&]() -> int { throw flaky_error(++calls); }), flaky_error);
  Reply reply = retry.execute(once, [&] { return Reply{503, ++calls}; });
  CHECK(reply.attempt == 2);
  CHECK(calls == 2);
  CHECK(clock.sleeps().empty());
  CHECK(retry.metrics().exhausted == 0);
}

TEST_CASE("the clock is read only when a deadline exists", "[retry]") {
  CountingClock clock;
  RetryStrategy<CountingClock> retry{{.max_attempts = 3}, clock};
  CHECK(retry.execute([] { return 1; }) == 1);
  CHECK_THROWS_AS(retry.execute([]() -> int { throw flaky_error(0); }), flaky_error);
  CHECK(*clock.reads == 0);
  CHECK(clock.clock.sleeps().size() == 2);
  CHECK_THROWS_AS(retry.execute(Context{.deadline = clock.clock.now() + 1h},
                                []() -> int { throw flaky_error(0); }),
                  flaky_error);
  CHECK(*clock.reads == 2);
}

TEST_CASE("neither the success path nor retrying a failed value allocates", "[retry]") {
  RetryStrategy<NoSleepClock> retry{{.max_attempts = 3}, NoSleepClock{}};
  int calls = 0;
  (void)retry.execute([] { return 0; });  // warm up: this thread's stripe and jitter source
  (void)retry.execute([&] { return Reply{++calls < 2 ? 503 : 200, calls}; });
  calls = 0;
  const bulwark::test::AllocationCounter allocations;
  CHECK(retry.execute([] { return 1; }) == 1);
  CHECK(retry.execute([&] { return Reply{++calls < 3 ? 503 : 200, calls}; }).status == 200);
  CHECK(allocations.count() == 0);
  CHECK(calls == 3);
}

TEST_CASE("the success path draws no random number", "[retry]") {
  RetryStrategy<ManualClock>::seed_random(7);
  const double first = bulwark::detail::retry_random_unit();
  RetryStrategy<ManualClock> retry{{}, ManualClock{}};
  RetryStrategy<ManualClock>::seed_random(7);
  for (int i = 0; i < 10; ++i) CHECK(retry.execute([i] { return i; }) == i);
  CHECK(bulwark::detail::retry_random_unit() == first);
}

// --- metrics -------------------------------------------------------------------------------------

TEST_CASE("metrics count calls, attempts, retries, late successes and exhaustion", "[retry]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{.max_attempts = 3}, clock};
  CHECK(retry.execute([] { return 1; }) == 1);  // 1 attempt
  int calls = 0;
  CHECK(retry.execute([&] {  // 3 attempts, success on the third
    if (++calls < 3) throw flaky_error(calls);
    return 2;
  }) == 2);
  CHECK_THROWS_AS(retry.execute([]() -> int { throw flaky_error(0); }),
                  flaky_error);  // 3, exhausted
  CHECK_THROWS_AS(retry.execute([]() -> int { throw bulwark::error("no"); }), bulwark::error);  // 1
  const bulwark::RetryMetrics m = retry.metrics();
  CHECK(m.calls == 4);
  CHECK(m.attempts == 8);
  CHECK(m.retries == 4);
  CHECK(m.successes_after_retry == 1);
  CHECK(m.exhausted == 1);
}

TEST_CASE("concurrent calls share one strategy safely", "[retry][threads]") {
  ManualClock clock;
  RetryStrategy<ManualClock> retry{{.max_attempts = 3}, clock};
  constexpr int per_thread = 200;
  std::atomic<int> wrong{0};  // Catch2 assertions are not thread-safe: count, check afterwards
  auto work = [&] {
    for (int i = 0; i < per_thread; ++i) {
      int attempt = 0;
      const int result = retry.execute([&] {
        if (++attempt < 2) throw flaky_error(attempt);
        return attempt;
      });
      if (result != 2) ++wrong;
    }
  };
  { std::jthread a{work}, b{work}; }
  CHECK(wrong == 0);
  const auto m = retry.metrics();
  CHECK(m.calls == 2 * per_thread);
  CHECK(m.retries == 2 * per_thread);
  CHECK(m.successes_after_retry == 2 * per_thread);
  CHECK(clock.sleeps().size() == 2 * per_thread);
}

TEST_CASE("calls are counted from more threads at once than there are owned stripes",
          "[retry][threads]") {
  RetryStrategy<ManualClock> retry{{}, ManualClock{}};
  constexpr int threads = 24;  // above StripeRegistry::owned: some threads share a stripe
  constexpr int per_thread = 500;
  std::latch all_started{threads};
  {
    std::vector<std::jthread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&] {
        all_started.arrive_and_wait();  // every thread holds its stripe while the others count
        for (int i = 0; i < per_thread; ++i) (void)retry.execute([i] { return i; });
      });
    }
  }
  CHECK(retry.metrics().calls == threads * per_thread);
  CHECK(retry.metrics().attempts == threads * per_thread);
  std::jthread{[&] {
    (void)retry.execute([] { return 0; });
  }}.join();  // a reused stripe keeps counting
  CHECK(retry.metrics().calls == threads * per_thread + 1);
}

// --- composition ---------------------------------------------------------------------------------

TEST_CASE("a retry pipeline with a breaker inside it stops as soon as the breaker opens",
          "[retry]") {
  ManualClock clock;
  int calls = 0;
  auto upstream = [&]() -> int { throw flaky_error(++calls); };
  SECTION("a policy that mimics an open breaker") {
    bulwark::Pipeline pipeline{RetryStrategy<ManualClock>{{.max_attempts = 10}, clock},
                               FakeBreaker{3}};
    CHECK_THROWS_AS(pipeline.execute(upstream), bulwark::circuit_open_error);
    CHECK(calls == 3);
    CHECK(pipeline.get<0>().metrics().attempts == 4);  // the fourth was rejected by the breaker
  }
  SECTION("bulwark's CircuitBreaker") {
    bulwark::Pipeline pipeline{
        RetryStrategy<ManualClock>{{.max_attempts = 10}, clock},
        bulwark::CircuitBreaker<ManualClock>{{.failure_threshold = 4, .open_timeout = 60s}, clock}};
    CHECK_THROWS_AS(pipeline.execute(upstream), bulwark::circuit_open_error);
    CHECK(calls == 4);
    CHECK(pipeline.get<1>().state() == bulwark::CircuitState::open);
    CHECK(clock.sleeps().size() == 4);
  }
}

TEST_CASE("a strategy is movable into a pipeline and deduces SteadyClock", "[retry]") {
  bulwark::Pipeline pipeline{RetryStrategy{{.max_attempts = 2}}};
  static_assert(
      std::is_same_v<decltype(pipeline), bulwark::Pipeline<RetryStrategy<bulwark::SteadyClock>>>);
  CHECK(pipeline.execute([] { return 5; }) == 5);
  CHECK(pipeline.get<0>().metrics().calls == 1);
}

// --- config validation ---------------------------------------------------------------------------

TEST_CASE("bad configs throw config_error naming the field, rule and value", "[retry]") {
  auto make = [](RetryConfig config) {
    RetryStrategy<ManualClock> retry{std::move(config), ManualClock{}};
  };
  CHECK_THROWS_WITH(make({.max_attempts = 0}),
                    "RetryConfig.max_attempts must be at least 1, got 0");
  CHECK_THROWS_WITH(make({.initial_delay = 0ms}),
                    "RetryConfig.initial_delay must be above 0, got 0ms");
  CHECK_THROWS_WITH(make({.initial_delay = -5ms}),
                    "RetryConfig.initial_delay must be above 0, got -5ms");
  CHECK_THROWS_WITH(make({.initial_delay = 6s, .max_delay = 5s}),
                    "RetryConfig.initial_delay must be at most max_delay (5000ms), got 6000ms");
  CHECK_THROWS_WITH(make({.max_delay = 25h}),
                    "RetryConfig.max_delay must be at most one day (86400000ms), got 90000000ms");
  CHECK_THROWS_WITH(make({.backoff_multiplier = 0.5}),
                    "RetryConfig.backoff_multiplier must be finite and at least 1, got 0.5");
  CHECK_THROWS_WITH(make({.backoff_multiplier = std::numeric_limits<double>::infinity()}),
                    "RetryConfig.backoff_multiplier must be finite and at least 1, got inf");
  CHECK_THROWS_WITH(make({.jitter_factor = 1.5}),
                    "RetryConfig.jitter_factor must be in [0, 1], got 1.5");
  CHECK_THROWS_WITH(make({.jitter_factor = -0.1}),
                    "RetryConfig.jitter_factor must be in [0, 1], got -0.1");
  CHECK_THROWS_WITH(make({.backoff = static_cast<Backoff>(7)}),
                    "RetryConfig.backoff must be seed, full_jitter or decorrelated_jitter, got 7");
  CHECK_THROWS_AS(make({.max_attempts = 0}), bulwark::config_error);
  CHECK_NOTHROW(make({.max_attempts = 1,
                      .initial_delay = 5s,
                      .max_delay = 5s,
                      .backoff_multiplier = 1.0,
                      .jitter_factor = 1.0}));
  CHECK_NOTHROW(make({.jitter_factor = 0.0}));
}

// --- events ----------------------------------------------------------------------------------

namespace {

// What a listener saw: type, attempt and delay of each event, in order.
struct Seen {
  bulwark::EventType type;
  std::size_t attempt;
  ms delay;
  bool operator==(const Seen&) const = default;
};

// A listener appending to `seen` (one thread: retry events come from the calling thread).
bulwark::EventListener record_into(std::vector<Seen>& seen) {
  return [&seen](const bulwark::Event& e) {
    seen.push_back({e.type, e.attempt, std::chrono::duration_cast<ms>(e.delay)});
  };
}

constexpr auto scheduled = bulwark::EventType::retry_scheduled;
constexpr auto exhausted = bulwark::EventType::retry_exhausted;

}  // namespace

TEST_CASE("on_event reports each retry's failed attempt and sleep, then the exhaustion",
          "[retry][events]") {
  ManualClock clock;
  std::vector<Seen> seen;
  RetryStrategy<ManualClock> retry{
      {.max_attempts = 3, .jitter_factor = 0.0, .on_event = record_into(seen)}, clock};

  SECTION("an exception every time") {
    CHECK_THROWS_AS(retry.execute([]() -> int { throw flaky_error(0); }), flaky_error);
    CHECK(seen ==
          std::vector<Seen>{{scheduled, 1, 100ms}, {scheduled, 2, 200ms}, {exhausted, 3, 0ms}});
    CHECK(sleeps_ms(clock) == std::vector<ms>{100ms, 200ms});  // the delays are the real sleeps
  }
  SECTION("a failed value every time") {
    CHECK(retry.execute([] { return Reply{503, 0}; }).status == 503);
    CHECK(seen ==
          std::vector<Seen>{{scheduled, 1, 100ms}, {scheduled, 2, 200ms}, {exhausted, 3, 0ms}});
  }
  SECTION("a retry_hint sets the reported delay") {
    CHECK_THROWS_AS(retry.execute([]() -> int { throw throttled_error(700ms); }), throttled_error);
    CHECK(seen ==
          std::vector<Seen>{{scheduled, 1, 700ms}, {scheduled, 2, 700ms}, {exhausted, 3, 0ms}});
  }
  SECTION("a late success reports its retries and no exhaustion") {
    int calls = 0;
    CHECK(retry.execute([&] {
      if (++calls < 3) throw flaky_error(calls);
      return 7;
    }) == 7);
    CHECK(seen == std::vector<Seen>{{scheduled, 1, 100ms}, {scheduled, 2, 200ms}});
  }
  SECTION("a first-attempt success reports nothing") {
    CHECK(retry.execute([] { return 1; }) == 1);
    CHECK(seen.empty());
  }
}

TEST_CASE("calls ended by anything but running out of attempts report no exhaustion",
          "[retry][events]") {
  ManualClock clock;
  std::vector<Seen> seen;
  RetryStrategy<ManualClock> retry{
      {.max_attempts = 3, .jitter_factor = 0.0, .on_event = record_into(seen)}, clock};
  SECTION("a failure not retried") {
    CHECK_THROWS_AS(retry.execute([]() -> int { throw bulwark::error("no"); }), bulwark::error);
    CHECK(seen.empty());
  }
  SECTION("a retry_hint beyond max_delay") {
    CHECK_THROWS_AS(retry.execute([]() -> int { throw throttled_error(6s); }), throttled_error);
    CHECK(seen.empty());
  }
  SECTION("a non-idempotent call") {
    Context ctx;
    ctx.idempotent = false;
    CHECK_THROWS_AS(retry.execute(ctx, []() -> int { throw flaky_error(1); }), flaky_error);
    CHECK(seen.empty());
  }
  SECTION("the deadline stops the second retry") {  // sleeps 100; the next (200) would reach 250
    Context ctx;
    ctx.deadline = clock.now() + 250ms;
    CHECK_THROWS_AS(retry.execute(ctx, []() -> int { throw flaky_error(1); }), flaky_error);
    CHECK(seen == std::vector<Seen>{{scheduled, 1, 100ms}});
  }
  SECTION("a stop requested before the first retry") {
    std::stop_source stop;
    Context ctx;
    ctx.stop = stop.get_token();
    CHECK_THROWS_AS(retry.execute(ctx,
                                  [&]() -> int {
                                    stop.request_stop();
                                    throw flaky_error(1);
                                  }),
                    bulwark::cancelled_error);
    CHECK(seen.empty());
  }
}

TEST_CASE("max_attempts = 1 reports exhaustion after its single attempt", "[retry][events]") {
  ManualClock clock;
  std::vector<Seen> seen;
  RetryStrategy<ManualClock> retry{{.max_attempts = 1, .on_event = record_into(seen)}, clock};
  CHECK_THROWS_AS(retry.execute([]() -> int { throw flaky_error(1); }), flaky_error);
  CHECK(seen == std::vector<Seen>{{exhausted, 1, 0ms}});
  CHECK(retry.metrics().exhausted == 1);
}

TEST_CASE("a throwing retry listener changes neither results, sleeps nor metrics",
          "[retry][events]") {
  ManualClock clock;
  int heard = 0;
  RetryStrategy<ManualClock> retry{{.max_attempts = 3,
                                    .jitter_factor = 0.0,
                                    .on_event =
                                        [&heard](const bulwark::Event&) {
                                          ++heard;
                                          throw std::runtime_error("listener bug");
                                        }},
                                   clock};
  int calls = 0;
  CHECK(retry.execute([&] {
    if (++calls < 2) throw flaky_error(calls);
    return 5;
  }) == 5);
  try {
    retry.execute([]() -> int { throw flaky_error(9); });
    FAIL("no exception");
  } catch (const flaky_error& e) {
    CHECK(e.attempt == 9);  // the callable's own exception, not the listener's
  }
  CHECK(heard == 4);  // 1 retry, then 2 retries and the exhaustion
  CHECK(sleeps_ms(clock) == std::vector<ms>{100ms, 100ms, 200ms});
  const bulwark::RetryMetrics m = retry.metrics();
  CHECK(m.calls == 2);
  CHECK(m.retries == 3);
  CHECK(m.successes_after_retry == 1);
  CHECK(m.exhausted == 1);
}
