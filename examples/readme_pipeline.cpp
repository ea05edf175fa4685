// The README's first example: a call wrapped in the seed's four policies, outermost first.
// README.md shows an excerpt of this program; tests/docs_examples_in_sync.cmake keeps the two
// the same, line for line.
#include <iostream>

#include <bulwark/bulwark.hpp>
using namespace std::chrono_literals;

int fetch_user(int id) { return id; }  // stands in for a call to the upstream API

int main() {
  // The first policy is the outermost.
  bulwark::Pipeline pipeline{
      bulwark::RateLimiter{{.max_requests = 50, .window = 60s, .burst = 60}},
      bulwark::Bulkhead{{.max_concurrent = 10, .max_queue = 20, .queue_timeout = 5s}},
      bulwark::CircuitBreaker{{.failure_threshold = 5, .open_timeout = 60s}},
      bulwark::RetryStrategy{{.max_attempts = 3, .initial_delay = 100ms}},
  };
  int user = pipeline.execute([] { return fetch_user(123); });  // a value, or the call's exception
  std::cout << "user " << user << '\n';
}
