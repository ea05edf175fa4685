// docs/circuit_breaker.md: a breaker opens after three failures, fails fast, turns half-open when
// open_timeout has passed, and closes after two probe successes. A ManualClock stands in for the
// steady clock, so the minute in the open state passes at once.
#include <bulwark/bulwark.hpp>

#include <chrono>
#include <iostream>
#include <stdexcept>

// A 4xx-like answer: the upstream is up and said no. It should not open the circuit.
struct not_found : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int main() {
  using namespace std::chrono_literals;
  bulwark::ManualClock clock;
  bulwark::CircuitBreaker<bulwark::ManualClock> breaker{
      {.failure_threshold = 3,
       .success_threshold = 2,
       .open_timeout = 60s,
       .monitoring_period = 120s,
       .is_failure =
           [](const std::exception& e) { return dynamic_cast<const not_found*>(&e) == nullptr; },
       .on_state_change =
           [](bulwark::CircuitState from, bulwark::CircuitState to) {
             std::cout << "  " << bulwark::to_string(from) << " -> " << bulwark::to_string(to)
                       << '\n';
           }},
      clock};

  bool upstream_down = true;
  auto fetch_user = [&](int id) {
    if (id == 0) throw not_found("no user 0");
    if (upstream_down) throw std::runtime_error("connection refused");
    return id;
  };

  try {
    breaker.execute([&] { return fetch_user(0); });
  } catch (const not_found&) {
    std::cout << "not_found passes through, counted as a success\n";
  }
  for (int i = 0; i < 3; ++i) {
    try {
      breaker.execute([&] { return fetch_user(123); });
    } catch (const std::runtime_error& e) {
      std::cout << "attempt " << i + 1 << ": " << e.what() << '\n';
    }
  }
  try {
    breaker.execute([&] { return fetch_user(123); });  // not called: the circuit is open
  } catch (const bulwark::circuit_open_error& e) {
    std::cout << "rejected; retry after " << e.retry_after().count() << " ms\n";
  }

  clock.advance(60s);  // open_timeout has passed: the next call is a probe
  const bulwark::CircuitState state = breaker.state();  // becomes half_open, even before a call
  std::cout << "after 60 s: " << bulwark::to_string(state) << '\n';
  upstream_down = false;
  for (int i = 0; i < 2; ++i) {
    const int user = breaker.execute([&] { return fetch_user(123); });
    std::cout << "probe " << i + 1 << ": user " << user << '\n';
  }

  const bulwark::CircuitBreakerMetrics m = breaker.metrics();
  std::cout << "state " << bulwark::to_string(m.state) << ", failures " << m.failures
            << " (closing forgets them)\n";
}
