// docs/format.md: metrics printed with fmt, one stage or a whole pipeline at once, and a breaker's
// metrics rendered for Prometheus. A ManualClock makes the clock readings repeat run after run.
#include <bulwark/bulwark.hpp>
#include <bulwark/format.hpp>

#include <fmt/core.h>

#include <chrono>
#include <stdexcept>
#include <string>

int main() {
  using namespace std::chrono_literals;
  bulwark::ManualClock clock;
  bulwark::Pipeline pipeline{
      bulwark::Bulkhead<bulwark::ManualClock>{{.max_concurrent = 10}, clock},
      bulwark::CircuitBreaker<bulwark::ManualClock>{{.failure_threshold = 5}, clock},
  };
  pipeline.execute([] {});
  try {
    pipeline.execute([] { throw std::runtime_error("503"); });
  } catch (const std::runtime_error&) {
  }

  auto& breaker = pipeline.get<1>();
  fmt::print("{}\n", breaker.state());
  fmt::print("[{:^11}]\n", breaker.state());  // string specs apply to the state's name
  fmt::print("{}\n", pipeline.get<0>().metrics());
  fmt::print("{}\n", breaker.metrics());
  fmt::print("{}\n", pipeline.metrics());  // the tuple of every stage's metrics

  const std::string page =
      bulwark::to_prometheus(breaker.metrics(), "users_api", {{"instance", "10.0.0.7:8080"}});
  fmt::print("{}", page);
}
