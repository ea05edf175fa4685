// docs/http.md: the seed's resilience stack around a keep-alive HTTP client. Needs a server:
//   build/release/examples/test_api 8080 &       # the fault-injecting test API, on 127.0.0.1
//   build/release/examples/docs/http http://127.0.0.1:8080
#include <signal.h>

#include <bulwark/format.hpp>
#include <bulwark/http.hpp>

#include <fmt/core.h>

#include <chrono>
#include <stop_token>

int main(int argc, char** argv) {
  if (argc != 2) {
    fmt::print(stderr, "usage: {} <base_url>   (e.g. http://127.0.0.1:8080)\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);  // https: OpenSSL may write to a socket the peer has closed
  using namespace std::chrono_literals;
  namespace http = bulwark::http;

  http::ResilienceConfig config = http::production_config();  // the seed's defaults
  config.pool.connections = 4;
  config.retry.initial_delay = 50ms;
  config.circuit_breaker.on_state_change = [](bulwark::CircuitState from,
                                              bulwark::CircuitState to) {
    fmt::print("breaker: {} -> {}\n", from, to);
  };
  http::ResilientHttpClient client{argv[1], config};

  try {
    const http::Response user = client.get("/users/123");
    fmt::print("GET /users/123: {} {}\n", user.status, user.body);

    // POST is not retried unless it carries an Idempotency-Key (or sets idempotent = true).
    const http::Response created = client.request({.method = "POST",
                                                   .path = "/users",
                                                   .headers = {{"Idempotency-Key", "ada-1"}},
                                                   .body = R"({"name":"Ada"})",
                                                   .content_type = "application/json"});
    fmt::print("POST /users: {}\n", created.status);

    // A deadline bounds the whole call, retries included; the stop token cancels it.
    std::stop_source cancel;
    const bulwark::Context ctx{.stop = cancel.get_token(),
                               .deadline = bulwark::SteadyClock{}.now() + 2s};
    client.request({.path = "/status/503"}, ctx);  // 503 every time: retried, then thrown
  } catch (const http::http_error& e) {
    fmt::print("http_error {}: {}\n", e.status(), e.what());
  } catch (const http::transport_error& e) {
    fmt::print("transport_error ({}): {}\n", http::to_string(e.kind()), e.what());
  } catch (const bulwark::error& e) {
    fmt::print("rejected: {}\n", e.what());  // circuit open, rate limited, deadline, ...
  }

  const http::ResilientHttpClient::Metrics m = client.metrics();
  fmt::print("circuit {}\nretry: {}\npool: {}\n", m.circuit_breaker.state, m.retry, m.pool);
}
