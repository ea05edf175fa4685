// bulwark/format.hpp on the real bulwark::http::ResilientHttpClient::Metrics: formatted and
// exported to Prometheus without format.hpp knowing the type (it includes no cpp-httplib).
// Built only when bulwark::http exists (tests/CMakeLists.txt: bulwark_format_http_tests).
#include <bulwark/format.hpp>
#include <bulwark/http.hpp>

#include <catch2/catch.hpp>

#include <string>

#include <fmt/format.h>

#include "format/prometheus_parser.hpp"

TEST_CASE("the HTTP client's metrics format and export without format.hpp knowing them",
          "[format][http]") {
  // Loopback, port 1: constructing the client opens no connection, and nothing is sent.
  bulwark::http::ResilientHttpClient client{"http://127.0.0.1:1"};
  const auto metrics = client.metrics();

  const auto text = fmt::format("{}", metrics);
  CHECK(text.starts_with("{circuit_breaker={state=closed failures=0 "));
  CHECK(text.find(" bulkhead={active_count=0 queued_count=0 available_slots=10} ") !=
        std::string::npos);
  CHECK(text.ends_with(" pool={open=0 idle=0 in_use=0 created=0 reused=0 discarded=0}}"));

  const auto exposition = prometheus_test::parse_exposition(bulwark::to_prometheus(metrics, "api"));
  CHECK(exposition.types.size() == 22);
  CHECK(exposition.value("api_bulkhead_available_slots") == 10);
  CHECK(exposition.value("api_rate_limiter_max_tokens") == 60);
  CHECK(exposition.value("api_retry_calls_total") == 0);
  double state_sum = 0;
  for (const auto& sample : exposition.named("api_circuit_state")) {
    state_sum += sample.value;
    CHECK(sample.value == (sample.label("state") == "closed" ? 1 : 0));
  }
  CHECK(state_sum == 1);
}
