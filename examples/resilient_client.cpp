// resilient_client — the seed's usage example made real, then a fault drill.
//
//   resilient_client <base_url>        e.g. resilient_client http://127.0.0.1:8080
//
// Against the test API (examples/test_api.cpp): fetches /users/123 and prints it, then tells the
// server (POST /admin/faults) to fail every request, drives a burst of requests through the
// client from four threads, and prints the circuit state, active requests and available tokens
// whenever they change: the breaker opens and fails fast, the server heals, the breaker goes
// half-open and closes again. Bounded: about 8 s, never more than 25 s.
#include <signal.h>

#include <fmt/core.h>
#include <httplib.h>
#include <bulwark/format.hpp>
#include <bulwark/http.hpp>

#include <atomic>
#include <chrono>
#include <exception>
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

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fmt::print(stderr, "usage: {} <base_url>   (e.g. http://127.0.0.1:8080, the test_api server)\n",
               argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  const std::string base_url = argv[1];

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
  while (Clock::now() < limit) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!healed && seconds >= 2.5) {
      healed = set_failure_rate(base_url, 0.0);
      fmt::print("[{:5.2f}s] upstream healed\n", seconds);
    }
    metrics = client.metrics();
    const auto state = metrics.circuit_breaker.state;
    was_open = was_open || state == bulwark::CircuitState::open;
    // A line whenever the state or the active count changes, or the tokens move by 5 or more.
    const std::size_t tokens = metrics.rate_limiter.available_tokens;
    const std::size_t token_step =
        tokens > last_tokens ? tokens - last_tokens : last_tokens - tokens;
    const std::string key = fmt::format("{} {}", state, metrics.bulkhead.active_count);
    const std::string line =
        fmt::format("circuit={:<9} active={:<2} tokens={:<3}", state, metrics.bulkhead.active_count,
                    metrics.rate_limiter.available_tokens);
    if (key != last || token_step >= 5) {
      fmt::print("[{:5.2f}s] {}  ok={} http_errors={} circuit_open={} rate_limited={}\n", seconds,
                 line, tally.ok.load(), tally.http_errors.load(), tally.circuit_open.load(),
                 tally.rate_limited.load());
      last = key;
      last_tokens = tokens;
    }
    if (healed && was_open && state == bulwark::CircuitState::closed && tally.ok.load() > 1) {
      if (!closed_again) fmt::print("[{:5.2f}s] the circuit closed again\n", seconds);
      closed_again = true;
      if (seconds >= 6.0) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  stop.store(true);
  for (auto& worker : workers) worker.join();

  metrics = client.metrics();
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
