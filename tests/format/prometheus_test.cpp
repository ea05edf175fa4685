// Tests for bulwark::to_prometheus (bulwark/format.hpp): every output is read back by a strict
// parser of the text exposition format (prometheus_parser.hpp), which is itself tested first.
#include <bulwark/format.hpp>
#include <bulwark/pipeline.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "format/client_metrics.hpp"
#include "format/prometheus_parser.hpp"

using namespace std::chrono_literals;
using bulwark::CircuitState;
using bulwark::to_prometheus;
using prometheus_test::parse_exposition;

namespace {

using format_test::ClientMetrics;

struct RetryOnly {
  bulwark::RetryMetrics retry{};
};

ClientMetrics busy_client() {
  ClientMetrics m;
  m.circuit_breaker.state = CircuitState::half_open;
  m.circuit_breaker.failures = 5;
  m.circuit_breaker.successes = 40;
  m.circuit_breaker.consecutive_failures = 0;
  m.circuit_breaker.consecutive_successes = 1;
  m.bulkhead = {.active_count = 10, .queued_count = 3, .available_slots = 0};
  m.rate_limiter = {.available_tokens = 17, .max_tokens = 60, .refill_rate = 50.0 / 60.0};
  m.retry = {.calls = 45, .attempts = 52, .retries = 7, .successes_after_retry = 4, .exhausted = 1};
  m.pool = {.open = 10, .idle = 0, .in_use = 10, .created = 12, .reused = 33, .discarded = 2};
  return m;
}

// Every metric name to_prometheus writes for each struct, after "<prefix>_".
const std::set<std::string> breaker_names{"circuit_state", "circuit_failures", "circuit_successes",
                                          "circuit_consecutive_failures",
                                          "circuit_consecutive_successes"};
const std::set<std::string> bulkhead_names{"bulkhead_active_calls", "bulkhead_queued_calls",
                                           "bulkhead_available_slots"};
const std::set<std::string> rate_limiter_names{"rate_limiter_available_tokens",
                                               "rate_limiter_max_tokens",
                                               "rate_limiter_refill_tokens_per_second"};
const std::set<std::string> retry_names{"retry_calls_total", "retry_attempts_total",
                                        "retry_retries_total", "retry_successes_after_retry_total",
                                        "retry_exhausted_total"};
const std::set<std::string> pool_names{
    "pool_connections_open",         "pool_connections_idle",
    "pool_connections_in_use",       "pool_connections_created_total",
    "pool_connections_reused_total", "pool_connections_discarded_total"};

std::set<std::string> prefixed(const std::string& prefix,
                               std::initializer_list<const std::set<std::string>*> groups) {
  std::set<std::string> names;
  for (const auto* group : groups) {
    for (const auto& name : *group) names.insert(prefix + "_" + name);
  }
  return names;
}

std::set<std::string> declared(const prometheus_test::Exposition& exposition) {
  std::set<std::string> names;
  for (const auto& [name, type] : exposition.types) names.insert(name);
  return names;
}

// The state gauge's samples as state -> value; checks it is 0/1 and sums to 1.
std::string current_state(const prometheus_test::Exposition& exposition, const std::string& name) {
  const auto samples = exposition.named(name);
  REQUIRE(samples.size() == 3);
  std::set<std::string> states;
  double sum = 0;
  std::string current;
  for (const auto& sample : samples) {
    states.insert(sample.label("state"));
    CHECK((sample.value == 0 || sample.value == 1));
    sum += sample.value;
    if (sample.value == 1) current = sample.label("state");
  }
  CHECK(states == std::set<std::string>{"closed", "open", "half_open"});
  CHECK(sum == 1);
  return current;
}

}  // namespace

TEST_CASE("the exposition checker rejects what Prometheus would", "[format]") {
  const std::string ok = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n";
  CHECK_NOTHROW(parse_exposition(ok));
  const auto rejects = [](const std::string& text, const std::string& why) {
    INFO(text);
    CHECK_THROWS_WITH(parse_exposition(text), Catch::Contains(why));
  };
  rejects("# HELP a A.\na 1\n", "sample without a TYPE before it");
  rejects("# HELP a A.\n# TYPE a gauge\na 1\n# HELP a Again.\n", "after the metric's samples");
  rejects("# HELP a A.\n# TYPE a counter\na 1\n", "counter name does not end in _total");
  rejects("# HELP a A.\n# TYPE a gauge\na one\n", "value is not a number");
  rejects("# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n", "invalid metric name");
  rejects("# HELP a A.\n# TYPE a gauge\na{l=\"x\"y\"} 1\n", "label without =");
  rejects("# HELP a A.\n# TYPE a gauge\na{l=\"x\\q\"} 1\n", "invalid escape");
  rejects("# HELP a A.\n# TYPE a gauge\na{__l=\"x\"} 1\n", "invalid label name");
  rejects("# HELP a A.\n# TYPE a gauge\na 1\na 2\n", "repeated series");
  rejects(
      "# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\na{x=\"1\"} 1\nb 1\n"
      "a{x=\"2\"} 1\n",
      "family split in two");
  rejects(ok.substr(0, ok.size() - 1), "does not end in a newline");
}

TEST_CASE("to_prometheus renders the client's metrics as valid exposition text", "[format]") {
  const auto text = to_prometheus(busy_client());
  INFO(text);
  const auto exposition = parse_exposition(text);

  CHECK(declared(exposition) ==
        prefixed("bulwark", {&breaker_names, &bulkhead_names, &rate_limiter_names, &retry_names,
                             &pool_names}));
  for (const auto& [name, type] : exposition.types) {
    INFO(name);
    CHECK(type == (name.ends_with("_total") ? "counter" : "gauge"));
    CHECK_FALSE(exposition.help.at(name).empty());
  }
  CHECK(current_state(exposition, "bulwark_circuit_state") == "half_open");
  CHECK(exposition.value("bulwark_circuit_failures") == 5);
  CHECK(exposition.value("bulwark_circuit_successes") == 40);
  CHECK(exposition.value("bulwark_circuit_consecutive_failures") == 0);
  CHECK(exposition.value("bulwark_circuit_consecutive_successes") == 1);
  CHECK(exposition.value("bulwark_bulkhead_active_calls") == 10);
  CHECK(exposition.value("bulwark_bulkhead_queued_calls") == 3);
  CHECK(exposition.value("bulwark_bulkhead_available_slots") == 0);
  CHECK(exposition.value("bulwark_rate_limiter_available_tokens") == 17);
  CHECK(exposition.value("bulwark_rate_limiter_max_tokens") == 60);
  CHECK(exposition.value("bulwark_rate_limiter_refill_tokens_per_second") == 50.0 / 60.0);
  CHECK(exposition.value("bulwark_retry_calls_total") == 45);
  CHECK(exposition.value("bulwark_retry_attempts_total") == 52);
  CHECK(exposition.value("bulwark_retry_retries_total") == 7);
  CHECK(exposition.value("bulwark_retry_successes_after_retry_total") == 4);
  CHECK(exposition.value("bulwark_retry_exhausted_total") == 1);
  CHECK(exposition.value("bulwark_pool_connections_open") == 10);
  CHECK(exposition.value("bulwark_pool_connections_idle") == 0);
  CHECK(exposition.value("bulwark_pool_connections_in_use") == 10);
  CHECK(exposition.value("bulwark_pool_connections_created_total") == 12);
  CHECK(exposition.value("bulwark_pool_connections_reused_total") == 33);
  CHECK(exposition.value("bulwark_pool_connections_discarded_total") == 2);
}

TEST_CASE("to_prometheus declares each metric with HELP then TYPE before its samples", "[format]") {
  const auto text = to_prometheus(bulwark::RetryMetrics{.calls = 3});
  CHECK(
      text.starts_with("# HELP bulwark_retry_calls_total Calls made through the retry strategy.\n"
                       "# TYPE bulwark_retry_calls_total counter\n"
                       "bulwark_retry_calls_total 3\n"
                       "# HELP bulwark_retry_attempts_total "));
}

TEST_CASE("the circuit state gauge is 1 for the current state and 0 for the others", "[format]") {
  for (const auto state : {CircuitState::closed, CircuitState::open, CircuitState::half_open}) {
    bulwark::CircuitBreakerMetrics metrics;
    metrics.state = state;
    const auto exposition = parse_exposition(to_prometheus(metrics));
    CHECK(current_state(exposition, "bulwark_circuit_state") == fmt::format("{}", state));
  }
}

TEST_CASE("to_prometheus exports each metrics struct alone", "[format]") {
  const auto exports = [](const auto& metrics, const std::set<std::string>& names) {
    const auto text = to_prometheus(metrics);
    INFO(text);
    CHECK(declared(parse_exposition(text)) == prefixed("bulwark", {&names}));
  };
  exports(bulwark::CircuitBreakerMetrics{}, breaker_names);
  exports(bulwark::BulkheadMetrics{}, bulkhead_names);
  exports(bulwark::RateLimiterMetrics{}, rate_limiter_names);
  exports(bulwark::RetryMetrics{}, retry_names);
  exports(bulwark::ConnectionPoolMetrics{}, pool_names);
}

TEST_CASE("to_prometheus exports only the members a struct has", "[format]") {
  const auto exposition = parse_exposition(to_prometheus(RetryOnly{.retry = {.exhausted = 2}}));
  CHECK(declared(exposition) == prefixed("bulwark", {&retry_names}));
  CHECK(exposition.value("bulwark_retry_exhausted_total") == 2);
}

TEST_CASE("to_prometheus exports a pipeline's metrics tuple, skipping stages without metrics",
          "[format]") {
  bulwark::ManualClock clock;
  bulwark::Pipeline pipeline{bulwark::Bulkhead<bulwark::ManualClock>{{}, clock},
                             bulwark::RetryStrategy<bulwark::ManualClock>{{}, clock}};
  CHECK(pipeline.execute([] { return 1; }) == 1);
  const auto metrics = std::tuple_cat(pipeline.metrics(), std::tuple{std::monostate{}});

  const auto exposition = parse_exposition(to_prometheus(metrics, "api"));
  CHECK(declared(exposition) == prefixed("api", {&bulkhead_names, &retry_names}));
  CHECK(exposition.value("api_retry_calls_total") == 1);
  CHECK(exposition.value("api_bulkhead_available_slots") == 10);
}

TEST_CASE("the prefix starts every metric name", "[format]") {
  for (const std::string prefix : {"upstream", "_x", "job:api_v2", "A9"}) {
    INFO(prefix);
    const auto exposition = parse_exposition(to_prometheus(busy_client(), prefix));
    for (const auto& name : declared(exposition)) CHECK(name.starts_with(prefix + "_"));
    CHECK(current_state(exposition, prefix + "_circuit_state") == "half_open");
  }
}

TEST_CASE("an invalid prefix throws invalid_argument naming it", "[format]") {
  const auto rejects = [](const std::string& prefix, const std::string& shown) {
    INFO(prefix);
    CHECK_THROWS_MATCHES(to_prometheus(bulwark::RetryMetrics{}, prefix), std::invalid_argument,
                         Catch::Message("to_prometheus: prefix \"" + shown +
                                        "\" is not a valid metric name "
                                        "(want [a-zA-Z_:][a-zA-Z0-9_:]*)"));
  };
  rejects("", "");
  rejects("9lives", "9lives");
  rejects("has-dash", "has-dash");
  rejects("white space", "white space");
  rejects("new\nline", "new\\nline");
  rejects("caf\xc3\xa9", "caf\xc3\xa9");
}

TEST_CASE("constant labels go on every sample, their values escaped", "[format]") {
  const std::string awkward = "C:\\path \"quoted\"\nnext line";
  const auto text =
      to_prometheus(busy_client(), "bulwark", {{"upstream", "api.example.com"}, {"note", awkward}});
  INFO(text);
  CHECK(text.find(R"(note="C:\\path \"quoted\"\nnext line")") != std::string::npos);
  CHECK(text.find("bulwark_circuit_state{upstream=\"api.example.com\",note=") != std::string::npos);

  const auto exposition = parse_exposition(text);
  for (const auto& sample : exposition.samples) {
    INFO(sample.name);
    REQUIRE(sample.labels.size() >= 2);
    CHECK(sample.labels[0] == std::pair<std::string, std::string>{"upstream", "api.example.com"});
    CHECK(sample.labels[1] == std::pair<std::string, std::string>{"note", awkward});
  }
  CHECK(current_state(exposition, "bulwark_circuit_state") == "half_open");
}

TEST_CASE("an invalid, reserved or repeated label name throws invalid_argument naming it",
          "[format]") {
  const auto rejects = [](const bulwark::PrometheusLabels& labels, const std::string& message) {
    CHECK_THROWS_MATCHES(to_prometheus(bulwark::RetryMetrics{}, "bulwark", labels),
                         std::invalid_argument, Catch::Message(message));
  };
  const std::string rule = " is not valid (want [a-zA-Z_][a-zA-Z0-9_]*, not starting with \"__\")";
  rejects({{"9a", "x"}}, "to_prometheus: label name \"9a\"" + rule);
  rejects({{"job:name", "x"}}, "to_prometheus: label name \"job:name\"" + rule);
  rejects({{"__name__", "x"}}, "to_prometheus: label name \"__name__\"" + rule);
  rejects({{"", "x"}}, "to_prometheus: label name \"\"" + rule);
  rejects({{"state", "x"}},
          "to_prometheus: label name \"state\" is taken by <prefix>_circuit_state");
  rejects({{"job", "a"}, {"job", "b"}}, "to_prometheus: label name \"job\" is given twice");
}

TEST_CASE("counts are written exactly, and a rate as a number Prometheus reads", "[format]") {
  constexpr auto huge = std::numeric_limits<std::size_t>::max();
  const auto text = to_prometheus(RetryOnly{.retry = {.calls = huge}});
  CHECK(text.find("bulwark_retry_calls_total " + std::to_string(huge) + "\n") != std::string::npos);

  const auto rate = [](double tokens_per_second) {
    const auto exposition = parse_exposition(
        to_prometheus(bulwark::RateLimiterMetrics{.refill_rate = tokens_per_second}));
    return exposition.value("bulwark_rate_limiter_refill_tokens_per_second");
  };
  CHECK(rate(1e-9) == 1e-9);
  CHECK(rate(1e300) == 1e300);
  CHECK(std::isinf(rate(std::numeric_limits<double>::infinity())));
  CHECK(std::isnan(rate(std::numeric_limits<double>::quiet_NaN())));
}
