// A consumer of the vcpkg port (tests/package/vcpkg_consumer): the core always; with
// BULWARK_TEST_HTTP / BULWARK_TEST_FORMAT the layers of the features installed, and both together
// when both are. Opens no connection. Exits 0 when everything held.
#include <bulwark/bulwark.hpp>

#include <cstdio>
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
  if (!ok) std::fprintf(stderr, "vcpkg consumer: %s\n", what);
  return ok;
}

}  // namespace

int main() {
  bool ok = true;

  bulwark::Pipeline pipeline{bulwark::Bulkhead{{.max_concurrent = 1, .max_queue = 0}},
                             bulwark::RetryStrategy{{.max_attempts = 1}}};
  ok &= check(pipeline.execute([] { return 41; }) == 41, "a call through the pipeline");
  ok &= check(pipeline.get<0>().metrics().available_slots == 1, "the bulkhead kept its slot");

#if BULWARK_TEST_HTTP
  // Builds the whole client stack, which links cpp-httplib (and OpenSSL); connects nowhere.
  bulwark::http::ResilientHttpClient client{"http://127.0.0.1:9"};
  ok &= check(client.metrics().circuit_breaker.state == bulwark::CircuitState::closed,
              "a new client's breaker is closed");
#endif
#if BULWARK_TEST_FORMAT
  ok &= check(fmt::format("{}", bulwark::CircuitState::half_open) == "half_open",
              "formatting a CircuitState");
#endif
#if BULWARK_TEST_HTTP && BULWARK_TEST_FORMAT
  const std::string page = bulwark::to_prometheus(client.metrics());
  ok &= check(page.find("bulwark_circuit_state{state=\"closed\"} 1") != std::string::npos,
              "to_prometheus on the client's metrics");
#endif
#if BULWARK_TEST_HTTP
  client.close();
#endif

  if (ok) std::puts("vcpkg consumer: ok");
  return ok ? 0 : 1;
}
