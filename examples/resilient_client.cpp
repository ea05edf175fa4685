// resilient_client — the seed's usage example made real, then a fault drill.
//
//   resilient_client <base_url> [--metrics-port P] [--plain]
//        e.g. resilient_client http://127.0.0.1:8080 --metrics-port 9464
//
// Against the test API (examples/test_api.cpp): fetches /users/123 and prints it, then tells the
// server (POST /admin/faults) to fail every request, drives a burst of requests through the
// client from four threads, and shows the circuit state, bulkhead occupancy and available tokens
// as the faults come and go: the breaker opens and fails fast, the server heals, the breaker goes
// half-open and closes again. On a terminal that is a one-screen live view redrawn ten times a
// second; otherwise (or with --plain) a line whenever something changes.
// --metrics-port P serves the client's metrics at http://127.0.0.1:P/metrics in Prometheus text
// format while it runs (0 picks a free port, printed). Bounded: about 8 s, never more than 25 s.
#include <signal.h>
#include <unistd.h>

#include <fmt/core.h>
#include <httplib.h>
#include <bulwark/format.hpp>
#include <bulwark/http.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Tally {
  std::atomic<int> ok{0}, http_errors{0}, transport_errors{0}, circuit_open{0}, rate_limited{0},
      other{0};
};

// One request through the stack, counted by outcome.
void one_request(bulwark::http::ResilientHttpClient& client, Tally& tally) {
  try {
    (void)client.get("/users/123");
    tally.ok.fetch_add(1);
  } catch (const bulwark::http::http_error&) {
    tally.http_errors.fetch_add(1);
  } catch (const bulwark::http::transport_error&) {
    tally.transport_errors.fetch_add(1);
  } catch (const bulwark::circuit_open_error&) {
    tally.circuit_open.fetch_add(1);
  } catch (const bulwark::rate_limited_error&) {
    tally.rate_limited.fetch_add(1);
  } catch (const std::exception&) {
    tally.other.fetch_add(1);
  }
}

// Tells the test API to fail a share of requests (0 heals it).
bool set_failure_rate(const std::string& base_url, double rate) {
  httplib::Client admin{base_url};
  admin.set_connection_timeout(2s);
  admin.set_read_timeout(2s);
  const auto result =
      admin.Post(("/admin/faults?failure_rate=" + std::to_string(rate)).c_str(), "", "text/plain");
  return result && result->status == 200;
}

// A bar of `width` cells, `filled` of `total` of them marked.
std::string bar(std::size_t filled, std::size_t total, std::size_t width = 30) {
  const std::size_t cells = total == 0 ? 0 : std::min(width, filled * width / total);
  return "[" + std::string(cells, '#') + std::string(width - cells, '.') + "]";
}

// The live view: one screen, redrawn in place.
std::string live_view(const bulwark::http::ResilientHttpClient::Metrics& m,
                      const bulwark::http::ResilienceConfig& config, const Tally& tally,
                      double seconds, std::string_view phase) {
  const auto& cb = m.circuit_breaker;
  return fmt::format(
      "bulwark live view   t={:5.2f}s   upstream: {}\n\n"
      "  circuit    {:<9}  failures in window {}  consecutive failures {}\n"
      "  bulkhead   {} {}/{} active, {} queued\n"
      "  tokens     {} {}/{} available ({:.0f}/s)\n"
      "  pool       {} open, {} idle, {} created, {} reused\n"
      "  retry      {} calls, {} attempts, {} retries, {} exhausted\n\n"
      "  outcomes   ok {}  http_error {}  transport_error {}  circuit_open {}  rate_limited {}\n",
      seconds, phase, cb.state, cb.failures, cb.consecutive_failures,
      bar(m.bulkhead.active_count, config.bulkhead.max_concurrent), m.bulkhead.active_count,
      config.bulkhead.max_concurrent, m.bulkhead.queued_count,
      bar(m.rate_limiter.available_tokens, m.rate_limiter.max_tokens),
      m.rate_limiter.available_tokens, m.rate_limiter.max_tokens, m.rate_limiter.refill_rate,
      m.pool.open, m.pool.idle, m.pool.created, m.pool.reused, m.retry.calls, m.retry.attempts,
      m.retry.retries, m.retry.exhausted, tally.ok.load(), tally.http_errors.load(),
      tally.transport_errors.load(), tally.circuit_open.load(), tally.rate_limited.load());
}

// Serves GET /metrics (Prometheus text format) on 127.0.0.1 from a thread of its own.
class MetricsEndpoint {
 public:
  MetricsEndpoint(const bulwark::http::ResilientHttpClient& client, int port) {
    server_.Get("/metrics", [&client](const httplib::Request&, httplib::Response& response) {
      response.set_content(bulwark::to_prometheus(client.metrics()),
                           "text/plain; version=0.0.4; charset=utf-8");
    });
    port_ = port == 0 ? server_.bind_to_any_port("127.0.0.1")
                      : (server_.bind_to_port("127.0.0.1", port) ? port : -1);
    if (port_ > 0) thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;
  ~MetricsEndpoint() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] int port() const noexcept { return port_; }

 private:
  httplib::Server server_;
  int port_ = -1;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string base_url;
  std::optional<int> metrics_port;
  bool plain = isatty(STDOUT_FILENO) == 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--metrics-port" && i + 1 < argc) {
      metrics_port = std::atoi(argv[++i]);
    } else if (arg == "--plain") {
      plain = true;
    } else if (base_url.empty() && !arg.starts_with("-")) {
      base_url = arg;
    } else {
      base_url.clear();
      break;
    }
  }
  if (base_url.empty() || (metrics_port && (*metrics_port < 0 || *metrics_port > 65535))) {
    fmt::print(stderr,
               "usage: {} <base_url> [--metrics-port P] [--plain]\n"
               "  base_url: the test_api server, e.g. http://127.0.0.1:8080\n",
               argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);

  // The seed's production config, with a breaker that reopens for probes after 2 s (not 60 s)
  // and a rate limit the burst below can visibly drain, so the drill fits in a few seconds.
  auto config = bulwark::http::production_config();
  config.circuit_breaker.open_timeout = 2s;
  config.rate_limiter.max_requests = 40;
  config.rate_limiter.window = 1s;
  config.rate_limiter.burst = 60;
  config.retry.initial_delay = 20ms;
  config.retry.max_delay = 200ms;
  config.pool.connect_timeout = 2s;
  config.pool.headers_timeout = 2s;
  config.pool.body_timeout = 2s;
  bulwark::http::ResilientHttpClient client{base_url, config};
  std::optional<MetricsEndpoint> endpoint;
  if (metrics_port) {
    endpoint.emplace(client, *metrics_port);
    if (endpoint->port() < 0) {
      fmt::print(stderr, "cannot listen on 127.0.0.1:{}\n", *metrics_port);
      return 1;
    }
    fmt::print("metrics: http://127.0.0.1:{}/metrics\n", endpoint->port());
  }

  // The seed's usage example.
  try {
    const auto data = client.get("/users/123");
    fmt::print("User data: {}\n", data.body);
  } catch (const std::exception& error) {
    fmt::print(stderr, "Request failed after all resilience attempts: {}\n", error.what());
    return 1;
  }
  auto metrics = client.metrics();
  fmt::print("Circuit breaker state: {}\n", metrics.circuit_breaker.state);
  fmt::print("Active requests: {}\n", metrics.bulkhead.active_count);
  fmt::print("Available rate limit tokens: {}\n\n", metrics.rate_limiter.available_tokens);

  // The drill: the upstream fails everything for 2.5 s, then heals.
  if (!set_failure_rate(base_url, 1.0)) {
    fmt::print(stderr, "cannot reach {}/admin/faults: is this the test_api server?\n", base_url);
    return 1;
  }
  fmt::print("upstream now fails every request; 4 threads send a request every 80 ms\n");
  Tally tally;
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&] {
      while (!stop.load()) {
        one_request(client, tally);
        std::this_thread::sleep_for(80ms);
      }
    });
  }

  bool healed = false;
  bool was_open = false;
  bool closed_again = false;
  std::string last;
  std::size_t last_tokens = 0;
  const auto limit = start + 20s;
  auto next_frame = start;
  while (Clock::now() < limit) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!healed && seconds >= 2.5) {
      healed = set_failure_rate(base_url, 0.0);
      if (plain) fmt::print("[{:5.2f}s] upstream healed\n", seconds);
    }
    metrics = client.metrics();
    const auto state = metrics.circuit_breaker.state;
    was_open = was_open || state == bulwark::CircuitState::open;
    if (plain) {
      // A line whenever the state or the active count changes, or the tokens move by 5 or more.
      const std::size_t tokens = metrics.rate_limiter.available_tokens;
      const std::size_t token_step =
          tokens > last_tokens ? tokens - last_tokens : last_tokens - tokens;
      const std::string key = fmt::format("{} {}", state, metrics.bulkhead.active_count);
      if (key != last || token_step >= 5) {
        fmt::print(
            "[{:5.2f}s] circuit={:<9} active={:<2} tokens={:<3}  ok={} http_errors={} "
            "circuit_open={} rate_limited={}\n",
            seconds, state, metrics.bulkhead.active_count, tokens, tally.ok.load(),
            tally.http_errors.load(), tally.circuit_open.load(), tally.rate_limited.load());
        last = key;
        last_tokens = tokens;
      }
    } else if (Clock::now() >= next_frame) {  // ten frames a second
      next_frame = Clock::now() + 100ms;
      // Cursor home, clear the screen, draw the view.
      fmt::print("\x1b[H\x1b[J{}", live_view(metrics, config, tally, seconds,
                                             healed ? "healthy" : "failing every request"));
      std::fflush(stdout);
    }
    if (healed && was_open && state == bulwark::CircuitState::closed && tally.ok.load() > 1) {
      if (!closed_again && plain) fmt::print("[{:5.2f}s] the circuit closed again\n", seconds);
      closed_again = true;
      if (seconds >= 6.0) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  stop.store(true);
  for (auto& worker : workers) worker.join();

  metrics = client.metrics();
  if (!plain) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    fmt::print("\x1b[H\x1b[J{}", live_view(metrics, config, tally, seconds, "healthy"));
  }
  if (endpoint) fmt::print("\n/metrics at the end:\n{}", bulwark::to_prometheus(metrics));
  fmt::print(
      "\nrequests: ok={} http_errors={} transport_errors={} circuit_open={} rate_limited={} "
      "other={}\n"
      "retry: calls={} attempts={} retries={} exhausted={}\n"
      "pool: created={} reused={} open={}\n",
      tally.ok.load(), tally.http_errors.load(), tally.transport_errors.load(),
      tally.circuit_open.load(), tally.rate_limited.load(), tally.other.load(), metrics.retry.calls,
      metrics.retry.attempts, metrics.retry.retries, metrics.retry.exhausted, metrics.pool.created,
      metrics.pool.reused, metrics.pool.open);
  client.close();
  if (!was_open || !closed_again) {
    fmt::print(stderr, "the drill did not go as expected (opened: {}, closed again: {})\n",
               was_open, closed_again);
    return 1;
  }
  return 0;
}
