// docs/pipeline.md: policies composed outermost first, a policy of your own among them, one
// breaker shared by two pipelines through std::ref, stages reached with get<>(), and the
// metrics of every stage in one tuple.
#include <bulwark/bulwark.hpp>

#include <chrono>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>

// A policy of your own: any type with execute(ctx, next). This one logs and passes everything
// through; it has no metrics(), so the pipeline reports std::monostate for it.
struct Log {
  std::string name;
  template <class F>
  decltype(auto) execute(const bulwark::Context& ctx, F&& next) {
    std::cout << "  " << name << ": call\n";
    return next(ctx);  // its value or exception passes through unchanged
  }
};

int main() {
  using namespace std::chrono_literals;
  bulwark::CircuitBreaker host_breaker{{.failure_threshold = 2}};  // one per upstream host

  bulwark::Pipeline users{
      bulwark::Bulkhead{{.max_concurrent = 4, .max_queue = 8}},
      std::ref(host_breaker),
      Log{"users"},
      bulwark::RetryStrategy{{.max_attempts = 2, .initial_delay = 1ms}},
  };
  bulwark::Pipeline orders{std::ref(host_breaker), Log{"orders"}};

  const int user = users.execute([] { return 123; });
  std::cout << "user " << user << '\n';

  // A callable taking the Context sees the one given to execute().
  const bulwark::Context ctx{.deadline = bulwark::SteadyClock{}.now() + 2s};
  const bool has_deadline =
      users.execute(ctx, [](const bulwark::Context& c) { return c.deadline.has_value(); });
  std::cout << "deadline seen by the call: " << std::boolalpha << has_deadline << '\n';

  for (int i = 0; i < 2; ++i) {  // two failed calls open the shared breaker
    try {
      orders.execute([]() -> int { throw std::runtime_error("503"); });
    } catch (const std::runtime_error& e) {
      std::cout << "orders failed: " << e.what() << '\n';
    }
  }
  try {
    users.execute([] { return 123; });
  } catch (const bulwark::circuit_open_error&) {
    std::cout << "users: circuit open (shared with orders)\n";
  }

  auto& breaker = users.get<1>();  // a std::ref stage gives the policy itself
  auto& retry = users.get<bulwark::RetryStrategy<>>();
  std::cout << "same breaker: " << (&breaker == &host_breaker)
            << ", retry attempts so far: " << retry.metrics().attempts << '\n';

  auto [bulkhead, circuit, log, retries] = users.metrics();
  static_assert(std::is_same_v<decltype(log), std::monostate>);  // Log has no metrics()
  std::cout << "bulkhead available " << bulkhead.available_slots << ", circuit "
            << bulwark::to_string(circuit.state) << ", retry calls " << retries.calls << '\n';
}
