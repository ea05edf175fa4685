// Tests for bulwark/pipeline.hpp: composition order, calling conventions, results, get<>,
// metrics and sharing a policy between pipelines.
#include <bulwark/circuit_breaker.hpp>
#include <bulwark/pipeline.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "support/allocations.hpp"

using namespace std::chrono_literals;
using bulwark::CircuitState;
using bulwark::Context;
using bulwark::ManualClock;

namespace {

using Breaker = bulwark::CircuitBreaker<ManualClock>;

// Records the order in which stages are entered.
struct Trace {
  std::vector<std::string>* log;
  std::string name;
  template <class F>
  decltype(auto) execute(const Context& ctx, F&& next) {
    log->push_back(name);
    return next(ctx);
  }
  template <class F>
  decltype(auto) execute(F&& f) {
    return execute(Context{}, std::forward<F>(f));
  }
};

// A minimal retry: calls next up to `attempts` times while it throws std::runtime_error.
struct TryThrice {
  int attempts = 3;
  int calls = 0;
  template <class F>
  decltype(auto) execute(const Context& ctx, F&& next) {
    for (int attempt = 1;; ++attempt) {
      ++calls;
      try {
        return next(ctx);
      } catch (const bulwark::error&) {
        throw;
      } catch (const std::runtime_error&) {
        if (attempt == attempts) throw;
      }
    }
  }
  [[nodiscard]] int metrics() const { return calls; }
};

// Passes a modified context down, to prove the context travels.
struct NotIdempotent {
  template <class F>
  decltype(auto) execute(const Context& ctx, F&& next) {
    Context inner = ctx;
    inner.idempotent = false;
    return next(inner);
  }
};

struct Upstream {
  int calls = 0;
  int failures_left = 0;
  int operator()() {
    ++calls;
    if (failures_left > 0) {
      --failures_left;
      throw std::runtime_error("upstream failed");
    }
    return 42;
  }
};

}  // namespace

TEST_CASE("an empty pipeline just calls f", "[pipeline]") {
  bulwark::Pipeline<> empty;
  CHECK(empty.execute([] { return 3; }) == 3);
  CHECK(empty([] { return 4; }) == 4);
  CHECK(empty.execute(Context{.idempotent = false},
                      [](const Context& ctx) { return ctx.idempotent; }) == false);
}

TEST_CASE("the first policy is the outermost", "[pipeline]") {
  std::vector<std::string> log;
  bulwark::Pipeline pipeline{Trace{&log, "outer"}, Trace{&log, "middle"}, Trace{&log, "inner"}};
  pipeline.execute([&] { log.emplace_back("f"); });
  CHECK(log == std::vector<std::string>{"outer", "middle", "inner", "f"});
}

TEST_CASE("f is called with the context when it takes one, else without", "[pipeline]") {
  std::vector<std::string> log;
  bulwark::Pipeline pipeline{Trace{&log, "a"}, NotIdempotent{}};
  CHECK(pipeline.execute([](const Context& ctx) { return ctx.idempotent; }) == false);
  CHECK(pipeline.execute([] { return 5; }) == 5);
  std::stop_source stop;
  CHECK(pipeline.execute(Context{.stop = stop.get_token()},
                         [](const Context& ctx) { return ctx.stop.stop_possible(); }));
}

TEST_CASE("void, move-only and reference results pass through", "[pipeline]") {
  std::vector<std::string> log;
  bulwark::Pipeline pipeline{Trace{&log, "a"}, Breaker{{}, ManualClock{}}};
  int side_effect = 0;
  pipeline.execute([&] { ++side_effect; });
  CHECK(side_effect == 1);
  std::unique_ptr<int> owned = pipeline.execute([] { return std::make_unique<int>(7); });
  CHECK(*owned == 7);
  int target = 0;
  int& ref = pipeline.execute([&]() -> int& { return target; });
  CHECK(&ref == &target);
}

TEST_CASE("the original exception type passes through every stage", "[pipeline]") {
  struct custom_error : std::runtime_error {
    using std::runtime_error::runtime_error;
    int code = 17;
  };
  std::vector<std::string> log;
  bulwark::Pipeline pipeline{Trace{&log, "a"}, Breaker{{}, ManualClock{}}, Trace{&log, "b"}};
  try {
    pipeline.execute([]() -> int { throw custom_error("boom"); });
    FAIL("no exception");
  } catch (const custom_error& e) {
    CHECK(e.code == 17);
    CHECK(std::string(e.what()) == "boom");
  }
}

TEST_CASE("get<I> and get<T> return the stage, std::ref stages the shared policy", "[pipeline]") {
  Breaker shared{{}, ManualClock{}};
  std::vector<std::string> log;
  bulwark::Pipeline pipeline{Trace{&log, "a"}, std::ref(shared), TryThrice{}};
  static_assert(std::is_same_v<decltype(pipeline.get<1>()), Breaker&>);
  static_assert(std::is_same_v<decltype(pipeline.get<Breaker>()), Breaker&>);
  CHECK(&pipeline.get<1>() == &shared);
  CHECK(&pipeline.get<Breaker>() == &shared);
  CHECK(pipeline.get<0>().name == "a");
  CHECK(&pipeline.get<TryThrice>() == &pipeline.get<2>());
}

TEST_CASE("metrics() gives each stage's metrics, monostate for a stage without", "[pipeline]") {
  std::vector<std::string> log;
  bulwark::Pipeline pipeline{Trace{&log, "a"}, Breaker{{}, ManualClock{}}, TryThrice{}};
  Upstream upstream{.failures_left = 1};
  CHECK(pipeline.execute(std::ref(upstream)) == 42);
  auto [trace, breaker, retry] = pipeline.metrics();
  static_assert(std::is_same_v<decltype(trace), std::monostate>);
  static_assert(std::is_same_v<decltype(breaker), bulwark::CircuitBreakerMetrics>);
  CHECK(breaker.failures == 0);  // the retry inside it absorbed the failed attempt
  CHECK(breaker.successes == 1);
  CHECK(retry == 2);
}

TEST_CASE("one breaker shared by two pipelines sees the failures of both", "[pipeline]") {
  ManualClock clock;
  Breaker shared{{.failure_threshold = 2, .open_timeout = 10s}, clock};
  bulwark::Pipeline first{std::ref(shared)};
  bulwark::Pipeline second{std::ref(shared), TryThrice{.attempts = 1}};
  CHECK_THROWS_AS(first.execute([]() -> int { throw std::runtime_error("a"); }),
                  std::runtime_error);
  CHECK(shared.state() == CircuitState::closed);
  CHECK_THROWS_AS(second.execute([]() -> int { throw std::runtime_error("b"); }),
                  std::runtime_error);
  CHECK(shared.state() == CircuitState::open);
  CHECK_THROWS_AS(first.execute([] { return 1; }), bulwark::circuit_open_error);
  CHECK_THROWS_AS(second.execute([] { return 1; }), bulwark::circuit_open_error);
}

TEST_CASE("a breaker outside a retry counts one failure per call", "[pipeline]") {
  ManualClock clock;
  bulwark::Pipeline pipeline{Breaker{{.failure_threshold = 3}, clock}, TryThrice{}};
  Upstream upstream{.failures_left = 1'000};
  for (int call = 0; call < 2; ++call)
    CHECK_THROWS_AS(pipeline.execute(std::ref(upstream)), std::runtime_error);
  CHECK(upstream.calls == 6);  // each call retried three times
  CHECK(pipeline.get<0>().metrics().failures == 2);
  CHECK(pipeline.get<0>().state() == CircuitState::closed);
}

TEST_CASE("a breaker inside a retry counts every attempt and stops the retry once open",
          "[pipeline]") {
  ManualClock clock;
  bulwark::Pipeline pipeline{TryThrice{.attempts = 10}, Breaker{{.failure_threshold = 3}, clock}};
  Upstream upstream{.failures_left = 1'000};
  CHECK_THROWS_AS(pipeline.execute(std::ref(upstream)), bulwark::circuit_open_error);
  CHECK(upstream.calls == 3);           // the breaker opened on the third failure
  CHECK(pipeline.get<0>().calls == 4);  // the fourth attempt was rejected, and not retried
  CHECK(pipeline.get<1>().state() == CircuitState::open);
}

TEST_CASE("pipelines nest as policies", "[pipeline]") {
  std::vector<std::string> log;
  bulwark::Pipeline inner{Trace{&log, "inner"}};
  bulwark::Pipeline outer{Trace{&log, "outer"}, std::ref(inner)};
  CHECK(outer.execute([] { return 9; }) == 9);
  CHECK(log == std::vector<std::string>{"outer", "inner"});
}

TEST_CASE("the success path through a pipeline allocates nothing", "[pipeline]") {
  std::vector<std::string> log;
  log.reserve(8);
  bulwark::Pipeline pipeline{Breaker{{}, ManualClock{}}, NotIdempotent{}, TryThrice{}};
  pipeline.execute([] { return 0; });  // first use on this thread takes its stripe
  const bulwark::test::AllocationCounter allocations;
  int sum = 0;
  for (int i = 0; i < 1000; ++i) sum += pipeline.execute([i] { return i; });
  CHECK(sum == 499'500);
  CHECK(allocations.count() == 0);
}
