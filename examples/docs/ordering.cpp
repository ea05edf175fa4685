// docs/ordering.md: what the order of the stages changes. A breaker outside the retry counts one
// failure per call, inside it one per attempt; a budget stage sets the deadline for what is
// below it; one breaker per host is shared by that host's pipelines through std::ref. The
// retries sleep on a ManualClock, so nothing waits in real time.
#include <bulwark/bulwark.hpp>

#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>

// A stage of your own: gives the stages below it `limit`, or less when the caller's own
// deadline comes sooner. Outermost, it bounds the whole call; just inside the retry, each attempt.
struct Budget {
  std::chrono::milliseconds limit;
  template <class F>
  decltype(auto) execute(const bulwark::Context& ctx, F&& next) {
    bulwark::Context inner = ctx;
    const auto mine = bulwark::SteadyClock{}.now() + limit;
    if (!inner.deadline || mine < *inner.deadline) inner.deadline = mine;
    return next(inner);
  }
};

int main() {
  using namespace std::chrono_literals;
  bulwark::ManualClock clock;
  int upstream_calls = 0;
  auto failing = [&]() -> int {
    ++upstream_calls;
    throw std::runtime_error("503");
  };
  auto attempt = [](auto& pipeline, auto f) {
    try {
      pipeline.execute(f);
    } catch (const bulwark::circuit_open_error&) {
      std::cout << "  circuit open\n";
    } catch (const std::runtime_error&) {
    }
  };

  // Breaker outside the retry (the seed's order): one failure per call, after its 3 attempts.
  bulwark::Pipeline outside{
      bulwark::CircuitBreaker{{.failure_threshold = 5}},
      bulwark::RetryStrategy<bulwark::ManualClock>{{.max_attempts = 3}, clock},
  };
  attempt(outside, failing);
  std::cout << "outside: " << upstream_calls << " upstream calls, "
            << outside.get<0>().metrics().failures << " failure counted\n";

  // Breaker inside the retry: every attempt counts, and once open the retry stops at once
  // (circuit_open_error is bulwark's own rejection, which the default retry_on never retries).
  upstream_calls = 0;
  bulwark::Pipeline inside{
      bulwark::RetryStrategy<bulwark::ManualClock>{{.max_attempts = 3}, clock},
      bulwark::CircuitBreaker{{.failure_threshold = 5}},
  };
  attempt(inside, failing);
  attempt(inside, failing);
  std::cout << "inside: " << upstream_calls << " upstream calls, circuit "
            << bulwark::to_string(inside.get<1>().state()) << '\n';

  // A 50 ms budget around a retry whose first backoff is 100 ms: the retry does not start a
  // sleep that would cross the deadline, and the first failure stands.
  upstream_calls = 0;
  bulwark::Pipeline budgeted{Budget{50ms}, bulwark::RetryStrategy{{.initial_delay = 100ms}}};
  attempt(budgeted, failing);
  std::cout << "budgeted: " << upstream_calls << " upstream call\n";

  // One breaker per upstream host, shared by every pipeline that calls that host.
  // (A std::map never moves its elements, so the references stay valid as hosts are added.)
  std::map<std::string, bulwark::CircuitBreaker<>> breakers;
  breakers.try_emplace("users.internal", bulwark::CircuitBreakerConfig{.failure_threshold = 5});
  auto& host = breakers.at("users.internal");
  bulwark::Pipeline get_user{bulwark::Bulkhead{{.max_concurrent = 10}}, std::ref(host),
                             bulwark::RetryStrategy<bulwark::ManualClock>{{}, clock}};
  bulwark::Pipeline list_users{bulwark::Bulkhead{{.max_concurrent = 2}}, std::ref(host),
                               bulwark::RetryStrategy<bulwark::ManualClock>{{}, clock}};
  for (int i = 0; i < 3; ++i) attempt(get_user, failing);
  for (int i = 0; i < 2; ++i) attempt(list_users, failing);
  attempt(get_user, [] { return 1; });
  std::cout << "shared: circuit " << bulwark::to_string(host.state()) << " for both pipelines\n";
}
