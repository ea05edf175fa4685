// Tests of ResilientHttpClient against the real test API (examples/test_api_server.hpp), started
// in-process on an ephemeral loopback port for each test.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using bulwark::http::http_error;
using bulwark::http::ResilientHttpClient;
using bulwark::http::transport_error;
using bulwark::http::TransportErrorKind;
using http_test::elapsed_ms;
using http_test::fast_config;
using Clock = std::chrono::steady_clock;

}  // namespace

TEST_CASE("a GET returns the upstream's response on the first attempt", "[http]") {
  test_api::Server server{{.threads = 8}};
  ResilientHttpClient client{server.base_url(), fast_config()};

  const auto response = client.get("/users/123");

  CHECK(response.status == 200);
  CHECK(response.body == R"({"id":123,"name":"User 123","email":"user123@example.com"})");
  CHECK(response.headers.find("content-type")->second == "application/json");
  const auto metrics = client.metrics();
  CHECK(metrics.retry.attempts == 1);
  CHECK(metrics.pool.created == 1);
  CHECK(metrics.circuit_breaker.state == bulwark::CircuitState::closed);
  CHECK(server.stats().requests == 1);
}

TEST_CASE("503 answers are retried until the upstream succeeds", "[http]") {
  test_api::Server server{{.threads = 8}};
  ResilientHttpClient client{server.base_url(), fast_config()};
  server.set_faults({.burst_503 = 2});

  const auto response = client.get("/users/7");

  CHECK(response.status == 200);
  CHECK(server.stats().requests == 3);
  const auto metrics = client.metrics();
  CHECK(metrics.retry.retries == 2);
  CHECK(metrics.retry.successes_after_retry == 1);
  CHECK(metrics.circuit_breaker.failures == 0);
  SECTION("and the connection that carried the 503s is reused") {
    CHECK(metrics.pool.created == 1);
  }
}

TEST_CASE("when retries run out the last 5xx is thrown as http_error", "[http]") {
  test_api::Server server{{.threads = 8}};
  ResilientHttpClient client{server.base_url(), fast_config()};
  server.set_faults({.burst_503 = 10});

  try {
    (void)client.get("/users/7");
    FAIL("no exception");
  } catch (const http_error& e) {
    CHECK(e.status() == 503);
    CHECK(e.response().body == R"({"error":"injected failure"})");
    CHECK(std::string(e.what()).find("GET http://127.0.0.1:") != std::string::npos);
    CHECK(std::string(e.what()).find("503") != std::string::npos);
  }
  CHECK(server.stats().requests == 3);
  CHECK(client.metrics().circuit_breaker.failures == 1);
}

TEST_CASE("a 404 is neither retried nor counted by the breaker", "[http]") {
  test_api::Server server{{.threads = 8}};
  auto config = fast_config();
  config.circuit_breaker.failure_threshold = 2;
  ResilientHttpClient client{server.base_url(), config};

  for (int i = 0; i < 5; ++i) {
    try {
      (void)client.get("/status/404");
      FAIL("no exception");
    } catch (const http_error& e) {
      CHECK(e.status() == 404);
      CHECK(e.retry_after() == 0ms);
    }
  }

  CHECK(server.stats().requests == 5);
  const auto metrics = client.metrics();
  CHECK(metrics.retry.retries == 0);
  CHECK(metrics.circuit_breaker.state == bulwark::CircuitState::closed);
  CHECK(metrics.circuit_breaker.failures == 0);
  CHECK(metrics.pool.created == 1);
}

TEST_CASE("a 429's Retry-After in seconds stretches the backoff", "[http]") {
  test_api::Server server{{.threads = 8}};
  auto config = fast_config();
  config.retry.max_delay = 2s;
  ResilientHttpClient client{server.base_url(), config};
  server.set_faults({.burst_429 = 1, .retry_after = 1});

  const auto start = Clock::now();
  const auto response = client.get("/users/1");

  CHECK(response.status == 200);
  CHECK(server.stats().requests == 2);
  const auto waited = elapsed_ms(start);
  CHECK(waited >= 990);
  CHECK(waited < 2500);
}

TEST_CASE("a Retry-After beyond retry.max_delay ends the retries at once", "[http]") {
  test_api::Server server{{.threads = 8}};
  ResilientHttpClient client{server.base_url(), fast_config()};
  server.set_faults({.burst_429 = 5, .retry_after = 30});

  const auto start = Clock::now();
  try {
    (void)client.get("/users/1");
    FAIL("no exception");
  } catch (const http_error& e) {
    CHECK(e.status() == 429);
    CHECK(e.retry_after() == 30s);
  }
  CHECK(elapsed_ms(start) < 1500);
  CHECK(server.stats().requests == 1);
}

TEST_CASE("a POST is not retried unless it is marked idempotent", "[http]") {
  test_api::Server server{{.threads = 8}};
  ResilientHttpClient client{server.base_url(), fast_config()};
  server.set_faults({.burst_503 = 1});
  bulwark::http::Request post{.method = "POST",
                              .path = "/users",
                              .body = R"({"name":"Ada"})",
                              .content_type = "application/json"};

  SECTION("by default one attempt") {
    CHECK_THROWS_AS(client.request(post), http_error);
    CHECK(server.stats().requests == 1);
  }
  SECTION("an Idempotency-Key header makes it retried") {
    post.headers.emplace("Idempotency-Key", "create-ada-1");
    const auto response = client.request(post);
    CHECK(response.status == 201);
    CHECK(response.body == R"({"name":"Ada"})");
    CHECK(server.stats().requests == 2);
  }
  SECTION("idempotent = true makes it retried") {
    post.idempotent = true;
    CHECK(client.request(post).status == 201);
    CHECK(server.stats().requests == 2);
  }
  SECTION("idempotent = false turns retries off for a GET too") {
    bulwark::http::Request get{.path = "/users/1", .idempotent = false};
    CHECK_THROWS_AS(client.request(get), http_error);
    CHECK(server.stats().requests == 1);
  }
}

TEST_CASE("a stalled response ends as transport_error timeout within the read timeout", "[http]") {
  test_api::Server server{{.threads = 8}};
  auto config = fast_config();
  config.pool.headers_timeout = 200ms;
  config.retry.max_attempts = 1;
  ResilientHttpClient client{server.base_url(), config};

  const auto start = Clock::now();
  try {
    (void)client.get("/users/1?stall_ms=3000");
    FAIL("no exception");
  } catch (const transport_error& e) {
    CHECK(e.kind() == TransportErrorKind::timeout);
  }
  const auto waited = elapsed_ms(start);
  CHECK(waited >= 195);
  CHECK(waited < 1500);  // the server stalls 3 s
  CHECK(client.metrics().circuit_breaker.failures == 1);
  SECTION("and the next request works on a fresh connection") {
    CHECK(client.get("/users/1").status == 200);
    CHECK(client.metrics().pool.created == 2);
  }
}

TEST_CASE("a connect that never completes ends as transport_error timeout within connect_timeout",
          "[http]") {
  http_test::BlackHole hole;
  auto config = fast_config();
  config.pool.connect_timeout = 200ms;
  config.retry.max_attempts = 1;
  ResilientHttpClient client{"http://127.0.0.1:" + std::to_string(hole.port()), config};

  const auto start = Clock::now();
  try {
    (void)client.get("/users/1");
    FAIL("no exception");
  } catch (const transport_error& e) {
    CHECK(e.kind() == TransportErrorKind::timeout);
  }
  const auto waited = elapsed_ms(start);
  CHECK(waited >= 195);
  CHECK(waited < 1500);  // a SYN retransmission would take 1 s more
}

TEST_CASE("a refused connection is a retried transport_error connect", "[http]") {
  auto config = fast_config();
  ResilientHttpClient client{"http://127.0.0.1:" + std::to_string(http_test::closed_port()),
                             config};

  try {
    (void)client.get("/users/1");
    FAIL("no exception");
  } catch (const transport_error& e) {
    CHECK(e.kind() == TransportErrorKind::connect);
  }
  const auto metrics = client.metrics();
  CHECK(metrics.retry.attempts == 3);
  CHECK(metrics.circuit_breaker.failures == 1);
}

TEST_CASE("a connection closed mid-body is a transport_error connection_reset, then retried",
          "[http]") {
  test_api::Server server{{.threads = 8}};
  auto config = fast_config();

  SECTION("one attempt shows the kind") {
    config.retry.max_attempts = 1;
    ResilientHttpClient client{server.base_url(), config};
    try {
      (void)client.get("/users/1?reset=1&bytes=4000");
      FAIL("no exception");
    } catch (const transport_error& e) {
      CHECK(e.kind() == TransportErrorKind::connection_reset);
    }
  }
  SECTION("a retry gets the whole response") {
    ResilientHttpClient client{server.base_url(), config};
    server.set_faults({.reset_rate = 1.0});
    std::thread heal{[&] {
      while (server.stats().requests < 1) std::this_thread::sleep_for(1ms);
      server.set_faults({});
    }};
    const auto response = client.get("/users/1");
    heal.join();
    CHECK(response.status == 200);
    CHECK(server.stats().requests >= 2);
  }
}

TEST_CASE("hundreds of sequential requests reuse the pool's keep-alive connections", "[http]") {
  test_api::Server server{{.threads = 8}};
  auto config = fast_config();
  config.pool.connections = 2;
  ResilientHttpClient client{server.base_url(), config};

  for (int i = 0; i < 300; ++i) REQUIRE(client.get("/users/" + std::to_string(i)).status == 200);

  CHECK(server.stats().requests == 300);
  CHECK(server.stats().connections <= 2);
  const auto pool = client.metrics().pool;
  CHECK(pool.created <= 2);
  CHECK(pool.reused >= 298);
}

TEST_CASE("concurrent requests never open more connections than pool.connections",
          "[http][threads]") {
  test_api::Server server{{.threads = 16}};
  auto config = fast_config();
  config.pool.connections = 3;
  config.bulkhead.max_concurrent = 8;
  ResilientHttpClient client{server.base_url(), config};

  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (client.get("/users/1").status == 200) ok.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();

  CHECK(ok.load() == 300);
  CHECK(server.stats().connections <= 3);
  CHECK(client.metrics().pool.created <= 3);
}

TEST_CASE("the breaker opens under a 503 storm, fails fast, and recovers", "[http]") {
  test_api::Server server{{.threads = 8}};
  auto config = fast_config();
  config.circuit_breaker.failure_threshold = 3;
  config.circuit_breaker.success_threshold = 2;
  config.circuit_breaker.open_timeout = 150ms;
  config.retry.max_attempts = 2;
  ResilientHttpClient client{server.base_url(), config};
  server.set_faults({.failure_rate = 1.0});

  for (int i = 0; i < 3; ++i) CHECK_THROWS_AS(client.get("/users/1"), http_error);
  CHECK(client.metrics().circuit_breaker.state == bulwark::CircuitState::open);
  const auto seen = server.stats().requests;
  CHECK(seen == 6);

  const auto start = Clock::now();
  CHECK_THROWS_AS(client.get("/users/1"), bulwark::circuit_open_error);
  CHECK(elapsed_ms(start) < 500);
  CHECK(server.stats().requests == seen);

  server.set_faults({});
  std::this_thread::sleep_for(160ms);
  CHECK(client.metrics().circuit_breaker.state == bulwark::CircuitState::half_open);
  CHECK(client.get("/users/1").status == 200);
  CHECK(client.get("/users/1").status == 200);
  CHECK(client.metrics().circuit_breaker.state == bulwark::CircuitState::closed);
}

TEST_CASE("a response body over max_body_size is cut off while reading", "[http]") {
  test_api::Server server{{.threads = 8}};
  auto config = fast_config();
  config.pool.max_body_size = 1000;
  ResilientHttpClient client{server.base_url(), config};

  SECTION("a declared Content-Length over the cap") {
    try {
      (void)client.get("/users/1?bytes=50000");
      FAIL("no exception");
    } catch (const transport_error& e) {
      CHECK(e.kind() == TransportErrorKind::body_too_large);
    }
  }
  SECTION("a chunked body that grows over the cap") {
    try {
      (void)client.get("/users/1?bytes=5000000&chunked=1");
      FAIL("no exception");
    } catch (const transport_error& e) {
      CHECK(e.kind() == TransportErrorKind::body_too_large);
    }
  }
  SECTION("a body at the cap is fine") {
    CHECK(client.get("/users/1?bytes=1000&chunked=1").body.size() == 1000);
    CHECK(client.get("/users/1?bytes=1000").body.size() == 1000);
    return;
  }
  CHECK(server.stats().requests == 1);  // not retried
  CHECK(client.metrics().circuit_breaker.failures == 0);
}

TEST_CASE("a header with CR or LF is refused before anything is sent", "[http]") {
  test_api::Server server{{.threads = 8}};
  ResilientHttpClient client{server.base_url(), fast_config()};
  bulwark::http::Request request{.path = "/users/1"};

  SECTION("in a value") {
    request.headers.emplace("X-Trace", "abc\r\nX-Injected: 1");
    try {
      (void)client.request(request);
      FAIL("no exception");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find("X-Trace") != std::string::npos);
    }
  }
  SECTION("in a name") {
    request.headers.emplace("X-Trace\nX-Injected", "1");
    CHECK_THROWS_AS(client.request(request), std::invalid_argument);
  }
  SECTION("in the content type") {
    request.method = "POST";
    request.body = "{}";
    request.content_type = "application/json\r\nX-Injected: 1";
    CHECK_THROWS_WITH(client.request(request), Catch::Contains("Content-Type"));
  }
  SECTION("in the path") {
    request.path = "/users/1 HTTP/1.1\r\nX-Injected: 1\r\n";
    CHECK_THROWS_AS(client.request(request), std::invalid_argument);
  }
  CHECK(server.stats().requests == 0);
  CHECK(client.metrics().retry.calls == 0);
}

TEST_CASE("credentials never appear in an exception's message", "[http]") {
  test_api::Server server{{.threads = 8}};
  const std::string secret_user = "alice-user";
  const std::string secret_password = "s3cr3t-pw";
  const std::string userinfo = secret_user + ":" + secret_password + "@";
  auto config = fast_config();
  config.retry.max_attempts = 1;
  const auto clean = [&](const std::string& message) {
    CHECK(message.find(secret_user) == std::string::npos);
    CHECK(message.find(secret_password) == std::string::npos);
    CHECK(message.find("tok-9f8e7d") == std::string::npos);
  };

  SECTION("userinfo is sent as Basic auth") {
    ResilientHttpClient client{"http://" + userinfo + "127.0.0.1:" + std::to_string(server.port()),
                               config};
    const auto echoed = client.get("/echo/headers").body;
    CHECK(echoed.find("Authorization: Basic YWxpY2UtdXNlcjpzM2NyM3QtcHc=") != std::string::npos);
  }
  SECTION("http_error") {
    ResilientHttpClient client{"http://" + userinfo + "127.0.0.1:" + std::to_string(server.port()),
                               config};
    try {
      (void)client.get("/status/500?token=tok-9f8e7d", {{"Authorization", "Bearer tok-9f8e7d"}});
      FAIL("no exception");
    } catch (const http_error& e) {
      clean(e.what());
    }
  }
  SECTION("transport_error") {
    ResilientHttpClient client{
        "http://" + userinfo + "127.0.0.1:" + std::to_string(http_test::closed_port()), config};
    try {
      (void)client.get("/users/1", {{"Authorization", "Bearer tok-9f8e7d"}});
      FAIL("no exception");
    } catch (const transport_error& e) {
      clean(e.what());
    }
  }
  SECTION("a refused Authorization header") {
    ResilientHttpClient client{server.base_url(), config};
    try {
      (void)client.get("/users/1", {{"Authorization", "Bearer tok-9f8e7d\r\nX: y"}});
      FAIL("no exception");
    } catch (const std::invalid_argument& e) {
      clean(e.what());
      CHECK(std::string(e.what()).find("Authorization") != std::string::npos);
    }
  }
  SECTION("a bad base URL") {
    for (const std::string& url :
         {"ftp://" + userinfo + "example.com", "http://" + userinfo + "127.0.0.1:99999",
          "http://" + userinfo, "http://" + userinfo + "127.0.0.1/x?y"}) {
      try {
        ResilientHttpClient client{url, config};
        FAIL("no exception for a bad URL");
      } catch (const bulwark::config_error& e) {
        clean(e.what());
      }
    }
  }
}

TEST_CASE("the context's deadline bounds the whole call, retries included", "[http]") {
  test_api::Server server{{.threads = 8}};
  auto config = fast_config();
  config.retry.max_attempts = 3;
  ResilientHttpClient client{server.base_url(), config};

  const auto start = Clock::now();
  bulwark::Context ctx;
  ctx.deadline = bulwark::SteadyClock{}.now() + 300ms;
  CHECK_THROWS_AS(client.request({.path = "/users/1?stall_ms=3000"}, ctx),
                  bulwark::deadline_exceeded_error);
  const auto waited = elapsed_ms(start);
  CHECK(waited >= 295);
  CHECK(waited < 1500);  // the server stalls 3 s, and three attempts were allowed
  CHECK(server.stats().requests == 1);
  CHECK(client.metrics().circuit_breaker.failures == 0);

  SECTION("a deadline already past sends nothing") {
    bulwark::Context past;
    past.deadline = bulwark::SteadyClock{}.now() - 1ms;
    CHECK_THROWS_AS(client.request({.path = "/users/1"}, past), bulwark::deadline_exceeded_error);
    CHECK(server.stats().requests == 1);
  }
}

TEST_CASE("a stop token cancels the request in flight", "[http][threads]") {
  test_api::Server server{{.threads = 8}};
  ResilientHttpClient client{server.base_url(), fast_config()};
  std::stop_source cancel;

  std::thread canceller{[&] {
    while (server.stats().requests < 1) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(20ms);
    cancel.request_stop();
  }};
  const auto start = Clock::now();
  bulwark::Context ctx;
  ctx.stop = cancel.get_token();
  CHECK_THROWS_AS(client.request({.path = "/users/1?stall_ms=3000"}, ctx),
                  bulwark::cancelled_error);
  canceller.join();
  CHECK(elapsed_ms(start) < 1500);  // the server stalls 3 s
  CHECK(server.stats().requests == 1);
}

TEST_CASE("close() ends requests in flight and refuses new ones", "[http][threads]") {
  test_api::Server server{{.threads = 8}};
  ResilientHttpClient client{server.base_url(), fast_config()};
  CHECK(client.get("/users/1").status == 200);

  std::thread closer{[&] {
    while (server.stats().requests < 2) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(20ms);
    client.close();
  }};
  const auto start = Clock::now();
  CHECK_THROWS_AS(client.get("/users/1?stall_ms=3000"), bulwark::error);
  closer.join();
  CHECK(elapsed_ms(start) < 1500);  // the server stalls 3 s
  CHECK_THROWS_WITH(client.get("/users/1"), Catch::Contains("closed"));
  CHECK(client.metrics().pool.open == 0);
  CHECK(server.stats().requests == 2);
}

TEST_CASE("pipelining above 1 is refused with a config_error", "[http]") {
  auto config = fast_config();
  config.pool.pipelining = 2;
  CHECK_THROWS_WITH(
      ResilientHttpClient("http://127.0.0.1:8080", config),
      "PoolConfig.pipelining must be 0 or 1 (HTTP pipelining is not supported: one request at a "
      "time per connection), got 2");
}

TEST_CASE("production_config() is the seed's PRODUCTION_RESILIENCE_CONFIG", "[http]") {
  const auto c = bulwark::http::production_config();
  CHECK(c.pool.connections == 10);
  CHECK(c.pool.pipelining == 1);
  CHECK(c.pool.connect_timeout == 10s);
  CHECK(c.pool.body_timeout == 30s);
  CHECK(c.pool.headers_timeout == 10s);
  CHECK(c.pool.keep_alive_timeout == 4s);
  CHECK(c.pool.keep_alive_max_timeout == 600s);
  CHECK(c.pool.max_body_size == 8u * 1024 * 1024);
  CHECK(c.circuit_breaker.failure_threshold == 5);
  CHECK(c.circuit_breaker.success_threshold == 2);
  CHECK(c.circuit_breaker.open_timeout == 60s);
  CHECK(c.circuit_breaker.monitoring_period == 120s);
  CHECK(c.bulkhead.max_concurrent == 10);
  CHECK(c.bulkhead.max_queue == 20);
  CHECK(c.bulkhead.queue_timeout == 5s);
  CHECK(c.rate_limiter.max_requests == 50);
  CHECK(c.rate_limiter.window == 60s);
  CHECK(c.rate_limiter.burst == 60);
  CHECK(c.retry.max_attempts == 3);
  CHECK(c.retry.initial_delay == 100ms);
  CHECK(c.retry.max_delay == 5s);
  CHECK(c.retry.backoff_multiplier == 2.0);
  CHECK(c.retry.jitter_factor == 0.1);
  CHECK_FALSE(c.retry.retry_on);
  CHECK_FALSE(c.circuit_breaker.is_failure);
}

TEST_CASE("the rate limiter's burst of 60 lets 60 calls through, then rejects", "[http]") {
  test_api::Server server{{.threads = 8}};
  auto config = bulwark::http::production_config();
  config.rate_limiter.window = 600s;  // the seed's burst, refilled slowly enough for a slow machine
  ResilientHttpClient client{server.base_url(), config};

  for (int i = 0; i < 60; ++i) REQUIRE(client.get("/users/1").status == 200);
  CHECK_THROWS_AS(client.get("/users/1"), bulwark::rate_limited_error);
  CHECK(server.stats().requests == 60);
}

TEST_CASE("a base URL's path prefix is prepended to every request path", "[http]") {
  const auto url =
      bulwark::http::detail::parse_base_url("https://u%40x:p%3Aw@API.example.com:8443/v1/");
  CHECK(url.tls);
  CHECK(url.host == "API.example.com");
  CHECK(url.port == 8443);
  CHECK(url.username == "u@x");
  CHECK(url.password == "p:w");
  CHECK(url.path_prefix == "/v1");
  CHECK(url.origin == "https://API.example.com:8443");
  const auto v6 = bulwark::http::detail::parse_base_url("http://[::1]");
  CHECK(v6.host == "::1");
  CHECK(v6.port == 80);
  CHECK(v6.origin == "http://[::1]:80");

  test_api::Server server{{.threads = 8}};
  ResilientHttpClient client{server.base_url() + "/users", fast_config()};
  CHECK(client.get("/42").body.find(R"("id":42)") != std::string::npos);
}

TEST_CASE("methods are idempotent as RFC 9110 says unless the request says otherwise", "[http]") {
  using bulwark::http::Request;
  using bulwark::http::detail::is_idempotent;
  for (const char* method : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"}) {
    CHECK(is_idempotent(Request{.method = method}));
  }
  CHECK_FALSE(is_idempotent(Request{.method = "POST"}));
  CHECK_FALSE(is_idempotent(Request{.method = "PATCH"}));
  CHECK(is_idempotent(Request{.method = "PATCH", .headers = {{"idempotency-key", "k"}}}));
  CHECK(is_idempotent(Request{.method = "POST", .idempotent = true}));
  CHECK_FALSE(is_idempotent(Request{.method = "GET", .idempotent = false}));
}
