// Tests for the fmt formatters of bulwark/format.hpp: CircuitState, each metrics struct, a
// Pipeline's metrics tuple, and structs of named metrics such as the HTTP client's Metrics
// (mimicked here, so these tests need no cpp-httplib).
#include <bulwark/format.hpp>

// format.hpp must reach neither cpp-httplib nor, through it, anything of the HTTP layer.
#ifdef CPPHTTPLIB_VERSION
constexpr bool format_includes_httplib = true;
#else
constexpr bool format_includes_httplib = false;
#endif
static_assert(!format_includes_httplib, "bulwark/format.hpp must not include cpp-httplib");

#include <bulwark/pipeline.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "format/client_metrics.hpp"

using namespace std::chrono_literals;
using bulwark::CircuitState;
using bulwark::ManualClock;
using bulwark::SteadyClock;

namespace {

using format_test::ClientMetrics;

// Some of the members, declared in another order.
struct PoolAndRetry {
  bulwark::ConnectionPoolMetrics pool{};
  bulwark::RetryMetrics retry{};
};

// Types the aggregate formatter must leave alone.
struct WrongRetryType {  // `retry` is not RetryMetrics
  bulwark::CircuitBreakerMetrics circuit_breaker{};
  int retry = 0;
};
struct RetryFunction {  // `retry` is a member function, not a data member
  [[nodiscard]] bulwark::RetryMetrics retry() const { return {}; }
};
struct NoneOfTheNames {
  bulwark::RetryMetrics retries{};
};
struct OwnFormatter {  // has the members, but formats itself
  bulwark::RetryMetrics retry{};
};

// A pipeline stage without metrics(): the pipeline reports std::monostate for it.
struct PassThrough {
  template <class F>
  decltype(auto) execute(const bulwark::Context& ctx, F&& next) {
    return next(ctx);
  }
  template <class F>
  decltype(auto) execute(F&& f) {
    return execute(bulwark::Context{}, std::forward<F>(f));
  }
};

SteadyClock::time_point at(std::chrono::milliseconds since_epoch) {
  return SteadyClock::time_point{since_epoch};
}

}  // namespace

template <>
struct fmt::formatter<OwnFormatter> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(const OwnFormatter&, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::formatter<fmt::string_view>::format("its own", ctx);
  }
};

TEST_CASE("a CircuitState formats as its enumerator name", "[format]") {
  CHECK(fmt::format("{}", CircuitState::closed) == "closed");
  CHECK(fmt::format("{}", CircuitState::open) == "open");
  CHECK(fmt::format("{}", CircuitState::half_open) == "half_open");

  SECTION("with the string specs: width, fill and alignment") {
    CHECK(fmt::format("[{:>9}]", CircuitState::open) == "[     open]");
    CHECK(fmt::format("[{:*<8}]", CircuitState::closed) == "[closed**]");
  }
  SECTION("a value outside the enum as unknown") {
    CHECK(fmt::format("{}", static_cast<CircuitState>(7)) == "unknown");
  }
}

TEST_CASE("each metrics struct formats as its type name and every field", "[format]") {
  SECTION("CircuitBreakerMetrics") {
    const bulwark::CircuitBreakerMetrics metrics{.state = CircuitState::half_open,
                                                 .failures = 4,
                                                 .successes = 12,
                                                 .consecutive_failures = 1,
                                                 .consecutive_successes = 2,
                                                 .last_failure_time = at(1'500ms),
                                                 .last_state_change = at(62'007ms)};
    CHECK(fmt::format("{}", metrics) ==
          "CircuitBreakerMetrics{state=half_open failures=4 successes=12 consecutive_failures=1 "
          "consecutive_successes=2 last_failure=@1.500s last_state_change=@62.007s}");
  }
  SECTION("BulkheadMetrics") {
    const bulwark::BulkheadMetrics metrics{
        .active_count = 2, .queued_count = 1, .available_slots = 8};
    CHECK(fmt::format("{}", metrics) ==
          "BulkheadMetrics{active_count=2 queued_count=1 available_slots=8}");
  }
  SECTION("RateLimiterMetrics, the refill rate per second") {
    const bulwark::RateLimiterMetrics metrics{
        .available_tokens = 59, .max_tokens = 60, .refill_rate = 0.5};
    CHECK(fmt::format("{}", metrics) ==
          "RateLimiterMetrics{available_tokens=59 max_tokens=60 refill_rate=0.5/s}");
  }
  SECTION("RetryMetrics") {
    const bulwark::RetryMetrics metrics{
        .calls = 3, .attempts = 5, .retries = 2, .successes_after_retry = 1, .exhausted = 4};
    CHECK(fmt::format("{}", metrics) ==
          "RetryMetrics{calls=3 attempts=5 retries=2 successes_after_retry=1 exhausted=4}");
  }
  SECTION("ConnectionPoolMetrics") {
    const bulwark::ConnectionPoolMetrics metrics{
        .open = 2, .idle = 1, .in_use = 1, .created = 3, .reused = 7, .discarded = 6};
    CHECK(fmt::format("{}", metrics) ==
          "ConnectionPoolMetrics{open=2 idle=1 in_use=1 created=3 reused=7 discarded=6}");
  }
}

TEST_CASE("a breaker's time points format as readings of its clock, to the millisecond",
          "[format]") {
  ManualClock clock;  // starts one virtual day after the epoch
  bulwark::CircuitBreaker<ManualClock> breaker{{.failure_threshold = 1}, clock};
  CHECK(fmt::format("{}", breaker.metrics()) ==
        "CircuitBreakerMetrics{state=closed failures=0 successes=0 consecutive_failures=0 "
        "consecutive_successes=0 last_failure=none last_state_change=@86400.000s}");

  clock.advance(1'500ms);
  CHECK_THROWS_AS(breaker.execute([]() -> int { throw std::runtime_error{"down"}; }),
                  std::runtime_error);
  CHECK(fmt::format("{}", breaker.metrics()) ==
        "CircuitBreakerMetrics{state=open failures=1 successes=0 consecutive_failures=1 "
        "consecutive_successes=0 last_failure=@86401.500s last_state_change=@86401.500s}");

  SECTION("a reading before the epoch has a sign; below a millisecond is cut") {
    const bulwark::CircuitBreakerMetrics before{
        .last_failure_time = SteadyClock::time_point{-1'500'999us},
        .last_state_change = SteadyClock::time_point{999us}};
    CHECK_THAT(fmt::format("{}", before),
               Catch::EndsWith("last_failure=@-1.500s last_state_change=@0.000s}"));
  }
}

TEST_CASE("a metrics struct rejects a format spec", "[format]") {
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:x}"), bulwark::RetryMetrics{}), fmt::format_error);
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:>20}"), ClientMetrics{}), fmt::format_error);
}

TEST_CASE("a pipeline's metrics tuple formats, a stage without metrics as monostate", "[format]") {
  ManualClock clock;
  bulwark::Pipeline pipeline{bulwark::RateLimiter<ManualClock>{{}, clock}, PassThrough{},
                             bulwark::RetryStrategy<ManualClock>{{}, clock}};
  int calls = 0;
  CHECK(pipeline.execute([&] {
    if (++calls == 1) throw std::runtime_error{"flaky"};
    return calls;
  }) == 2);

  CHECK(fmt::format("{}", pipeline.metrics()) ==
        "(RateLimiterMetrics{available_tokens=59 max_tokens=60 refill_rate=0.8333333333333334/s}, "
        "monostate, "
        "RetryMetrics{calls=1 attempts=2 retries=1 successes_after_retry=1 exhausted=0})");
}

TEST_CASE("a struct of named metrics formats member by member", "[format]") {
  SECTION("all five, in the client's order") {
    ClientMetrics metrics;
    metrics.circuit_breaker.state = CircuitState::open;
    metrics.circuit_breaker.last_state_change = at(2'000ms);
    metrics.bulkhead.available_slots = 10;
    metrics.rate_limiter = {.available_tokens = 1, .max_tokens = 60, .refill_rate = 2.0};
    metrics.retry.calls = 9;
    metrics.pool.created = 3;
    CHECK(fmt::format("{}", metrics) ==
          "{circuit_breaker={state=open failures=0 successes=0 consecutive_failures=0 "
          "consecutive_successes=0 last_failure=none last_state_change=@2.000s} "
          "bulkhead={active_count=0 queued_count=0 available_slots=10} "
          "rate_limiter={available_tokens=1 max_tokens=60 refill_rate=2/s} "
          "retry={calls=9 attempts=0 retries=0 successes_after_retry=0 exhausted=0} "
          "pool={open=0 idle=0 in_use=0 created=3 reused=0 discarded=0}}");
  }
  SECTION("some of them, still in the client's order") {
    const PoolAndRetry metrics{.pool = {.open = 1}, .retry = {.calls = 2}};
    CHECK(fmt::format("{}", metrics) ==
          "{retry={calls=2 attempts=0 retries=0 successes_after_retry=0 exhausted=0} "
          "pool={open=1 idle=0 in_use=0 created=0 reused=0 discarded=0}}");
  }
}

TEST_CASE("the named-metrics formatter claims no type that is not one", "[format]") {
  STATIC_REQUIRE(fmt::is_formattable<ClientMetrics>::value);
  STATIC_REQUIRE(fmt::is_formattable<PoolAndRetry>::value);
  STATIC_REQUIRE_FALSE(fmt::is_formattable<WrongRetryType>::value);
  STATIC_REQUIRE_FALSE(fmt::is_formattable<RetryFunction>::value);
  STATIC_REQUIRE_FALSE(fmt::is_formattable<NoneOfTheNames>::value);
  // A type's own formatter wins, and fmt's own formatting of ranges is untouched.
  CHECK(fmt::format("{}", OwnFormatter{}) == "its own");
  CHECK(fmt::format("{}", std::vector<CircuitState>{CircuitState::open, CircuitState::closed}) ==
        "[open, closed]");
}
