// docs/rate_limiter.md: 2 calls per second, burst 2. The bucket starts full; the third call is
// rejected with the time until the next token; time refills the bucket exactly. A ManualClock
// stands in for the steady clock.
#include <bulwark/bulwark.hpp>

#include <chrono>
#include <iostream>
#include <string>

int main() {
  using namespace std::chrono_literals;
  bulwark::ManualClock clock;
  bulwark::RateLimiter<bulwark::ManualClock> limiter{{.max_requests = 2, .window = 1s, .burst = 2},
                                                     clock};

  auto call = [&](const std::string& name) {
    try {
      limiter.execute([] { /* the upstream call */ });
      std::cout << name << ": ok\n";
    } catch (const bulwark::rate_limited_error& e) {
      std::cout << name << ": rate limited, next token in " << e.retry_after().count() << " ms\n";
    }
  };
  call("call 1");
  call("call 2");
  call("call 3");
  clock.advance(500ms);  // one token's worth of time: 1 s / 2
  call("call 4");
  clock.advance(10s);  // a long pause refills up to burst, not beyond
  const bulwark::RateLimiterMetrics m = limiter.metrics();
  std::cout << "tokens " << m.available_tokens << " of " << m.max_tokens << ", refill "
            << m.refill_rate << "/s\n";

  // max_wait > 0: a caller may wait for its token, but only when it can come in time.
  bulwark::RateLimiter<bulwark::ManualClock> patient{
      {.max_requests = 1, .window = 1s, .burst = 1, .max_wait = 100ms}, clock};
  patient.execute([] {});
  try {
    patient.execute([] {});  // the next token is 1 s away: rejected at once, no wait
  } catch (const bulwark::rate_limited_error& e) {
    std::cout << "patient: rejected at once, next token in " << e.retry_after().count() << " ms\n";
  }
}
