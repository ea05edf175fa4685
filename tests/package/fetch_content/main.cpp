// A consumer that took bulwark with FetchContent (tests/package/fetch_content): a breaker in a
// pipeline opens after one failure and then fails fast. Exits 0 when everything held.
#include <bulwark/bulwark.hpp>

#include <cstdio>
#include <stdexcept>

int main() {
  bulwark::Pipeline pipeline{bulwark::CircuitBreaker{{.failure_threshold = 1}}};
  if (pipeline.execute([] { return 41; }) != 41) return 1;
  try {
    pipeline.execute([]() -> int { throw std::runtime_error("upstream down"); });
    return 1;
  } catch (const std::runtime_error&) {
  }
  try {
    pipeline.execute([] { return 0; });
    std::fputs("fetch_content consumer: an open circuit let a call through\n", stderr);
    return 1;
  } catch (const bulwark::circuit_open_error&) {
  }
  if (pipeline.get<0>().state() != bulwark::CircuitState::open) return 1;
  std::puts("fetch_content consumer: ok");
  return 0;
}
