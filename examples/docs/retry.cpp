// docs/retry.md: a flaky call succeeds on its third attempt; a returned failure (an HTTP-like
// status) is retried through failure_traits; a call that is not idempotent gets one attempt. A
// ManualClock records the backoff sleeps instead of sleeping; seed_random makes the jitter repeat.
#include <bulwark/bulwark.hpp>

#include <chrono>
#include <iostream>
#include <stdexcept>

struct Reply {
  int status = 200;
};

// A Reply with a 5xx status is a failure even though nothing was thrown.
template <>
struct bulwark::failure_traits<Reply> {
  static bool is_failure(const Reply& reply) { return reply.status >= 500; }
};

int main() {
  using namespace std::chrono_literals;
  bulwark::ManualClock clock;
  bulwark::RetryStrategy<bulwark::ManualClock> retry{
      {.max_attempts = 3, .initial_delay = 100ms, .max_delay = 5s, .jitter_factor = 0.1}, clock};
  retry.seed_random(42);  // this thread's jitter now repeats run after run

  int calls = 0;
  const int user = retry.execute([&] {
    if (++calls < 3) throw std::runtime_error("connection reset");
    return 123;
  });
  std::cout << "user " << user << " after " << calls << " attempts; slept";
  for (auto sleep : clock.sleeps()) {
    std::cout << ' ' << std::chrono::duration_cast<std::chrono::milliseconds>(sleep).count()
              << " ms";
  }
  std::cout << '\n';

  const Reply reply = retry.execute([] { return Reply{503}; });  // every attempt answers 503
  std::cout << "attempts ran out: status " << reply.status << " returned, not thrown\n";

  calls = 0;
  try {
    retry.execute(bulwark::Context{.idempotent = false}, [&] {
      ++calls;
      throw std::runtime_error("timeout after the request was sent");
    });
  } catch (const std::runtime_error& e) {
    std::cout << "not idempotent: " << calls << " attempt, then \"" << e.what() << "\"\n";
  }

  const bulwark::RetryMetrics m = retry.metrics();
  std::cout << "calls " << m.calls << ", attempts " << m.attempts << ", retries " << m.retries
            << ", successes after retry " << m.successes_after_retry << ", exhausted "
            << m.exhausted << '\n';
}
