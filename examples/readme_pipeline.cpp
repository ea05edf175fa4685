// The README's first example: a call wrapped in the seed's four policies, outermost first.
#include <bulwark/bulwark.hpp>

#include <chrono>
#include <iostream>

int fetch_user(int id) { return id; }  // stands in for a call to the upstream API

int main() {
  using namespace std::chrono_literals;
  bulwark::Pipeline pipeline{
      bulwark::RateLimiter{{.max_requests = 50, .window = 60s, .burst = 60}},
      bulwark::Bulkhead{{.max_concurrent = 10, .max_queue = 20, .queue_timeout = 5s}},
      bulwark::CircuitBreaker{{.failure_threshold = 5, .open_timeout = 60s}},
      bulwark::RetryStrategy{{.max_attempts = 3, .initial_delay = 100ms}},
  };
  int user = pipeline.execute([] { return fetch_user(123); });
  std::cout << "user " << user << '\n';
}
