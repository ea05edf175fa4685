// A consumer of an installed bulwark (tests/package/find_package): a breaker in a pipeline opens
// after one failure and then fails fast. With BULWARK_TEST_HTTP / BULWARK_TEST_FORMAT it also
// uses the layers found through COMPONENTS http format. Exits 0 when everything held.
#include <bulwark/bulwark.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>

#if BULWARK_TEST_HTTP
#include <bulwark/http.hpp>
#endif
#if BULWARK_TEST_FORMAT
#include <fmt/format.h>

#include <bulwark/format.hpp>
#endif

namespace {

bool check(bool ok, const char* what) {
  if (!ok) std::fprintf(stderr, "find_package consumer: %s\n", what);
  return ok;
}

bool core_works() {
  bulwark::Pipeline pipeline{bulwark::CircuitBreaker{{.failure_threshold = 1}}};
  if (!check(pipeline.execute([] { return 41; }) == 41, "a call through the pipeline"))
    return false;
  try {
    pipeline.execute([]() -> int { throw std::runtime_error("upstream down"); });
    return check(false, "the caller's exception did not pass through");
  } catch (const std::runtime_error& e) {
    if (!check(std::string(e.what()) == "upstream down", "the exception changed")) return false;
  }
  try {
    pipeline.execute([] { return 0; });
    return check(false, "an open circuit let a call through");
  } catch (const bulwark::circuit_open_error&) {
  }
  return check(pipeline.get<0>().state() == bulwark::CircuitState::open, "state() is not open");
}

}  // namespace

int main() {
  bool ok = core_works();
#if BULWARK_TEST_HTTP
  const bulwark::http::ResilienceConfig config = bulwark::http::production_config();
  if (!check(config.pool.connections == 10, "production_config().pool.connections")) ok = false;
#endif
#if BULWARK_TEST_FORMAT
  const std::string state = fmt::format("{}", bulwark::CircuitState::half_open);
  if (!check(state == "half_open", "formatting a CircuitState")) ok = false;
#endif
  if (ok) std::puts("find_package consumer: ok");
  return ok ? 0 : 1;
}
