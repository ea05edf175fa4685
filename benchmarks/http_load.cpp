// http_load — ResilientHttpClient against raw cpp-httplib on loopback, same requests, same run.
//
//   http_load [--port P] [--ops N] [--threads T] [--rounds R] [--slices S] [--path PATH]
//             [--server-threads N]
//
// Without --port it starts the test API (examples/test_api_server.hpp) in-process on 127.0.0.1;
// with it, it targets 127.0.0.1:P (the test_api program, or the peers' nginx). Two clients:
//   raw:     T threads, each with its own keep-alive, TCP_NODELAY httplib::Client (the transport
//            limit, as /work/shared/peers/cpp/raw_httplib.cpp);
//   bulwark: T threads sharing one ResilientHttpClient (production_config(), the rate limiter
//            raised so it never rejects, bulkhead and pool sized to T).
// Each of R rounds sends N GET PATH through each client, in S slices of N/S requests that
// alternate between the two (which goes first alternates too), so a burst of noise from other
// processes on the machine hits both alike. Per-request latency is send to full body. Prints one
// JSON line per run (client and round), then one with the median over rounds of the ratios
// bulwark / raw of ops/s and of p99; exits 1 if they miss the goal (>= 0.95, <= 1.10) or a
// request failed. Defaults: N = 20000, T = 10, R = 5, S = 10, PATH = /users/123. Bounded: no new
// slice starts after 120 s.
#include <signal.h>

#include <httplib.h>
#include <bulwark/http.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../examples/test_api_server.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Options {
  int port = 0;
  long ops = 20'000;
  int threads = 10;
  int rounds = 5;
  int slices = 10;
  std::string path = "/users/123";
  std::size_t server_threads = 32;
};

// What one client did in one round, summed over its slices.
struct Run {
  std::vector<double> latencies_us;
  double seconds = 0;
  long errors = 0;

  [[nodiscard]] double ops_per_s() const {
    return seconds > 0 ? static_cast<double>(latencies_us.size()) / seconds : 0;
  }
};

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  auto index = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  index = std::clamp<std::size_t>(index, 1, sorted.size()) - 1;
  return sorted[index];
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  if (n == 0) return 0;
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

bool good(int status, const std::string& body) {
  return status == 200 && !body.empty() && body[0] == '{';
}

// T keep-alive httplib clients, one per thread: thread t only ever uses clients[t].
class RawClients {
 public:
  RawClients(const Options& options) : path_(options.path) {
    for (int t = 0; t < options.threads; ++t) {
      auto client = std::make_unique<httplib::Client>("127.0.0.1", options.port);
      client->set_keep_alive(true);
      client->set_tcp_nodelay(true);  // as undici does
      client->set_connection_timeout(10s);
      client->set_read_timeout(30s);
      clients_.push_back(std::move(client));
    }
  }
  bool operator()(int thread) {
    const auto result = clients_[static_cast<std::size_t>(thread)]->Get(path_);
    return result && good(result->status, result->body);
  }

 private:
  std::string path_;
  std::vector<std::unique_ptr<httplib::Client>> clients_;
};

// One ResilientHttpClient shared by every thread.
class BulwarkClient {
 public:
  BulwarkClient(const Options& options)
      : path_(options.path),
        client_("http://127.0.0.1:" + std::to_string(options.port), config(options)) {}
  bool operator()(int /*thread*/) {
    try {
      const auto response = client_.get(path_);
      return good(response.status, response.body);
    } catch (const std::exception&) {
      return false;
    }
  }

 private:
  static bulwark::http::ResilienceConfig config(const Options& options) {
    auto config = bulwark::http::production_config();
    config.rate_limiter.max_requests = 1'000'000'000;
    config.rate_limiter.window = 1s;
    config.rate_limiter.burst = 1'000'000'000;
    config.bulkhead.max_concurrent = static_cast<std::size_t>(options.threads);
    config.bulkhead.max_queue = static_cast<std::size_t>(options.threads);
    config.pool.connections = static_cast<std::size_t>(options.threads);
    return config;
  }

  std::string path_;
  bulwark::http::ResilientHttpClient client_;
};

// Sends `ops` requests from `threads` threads through `client` (thread t calls client(t)),
// adding the time from start to the last answer and every latency to `run`.
template <class Client>
void run_slice(Client& client, int threads, long ops, Run& run) {
  std::atomic<long> next{0};
  std::atomic<long> errors{0};
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto& mine = latencies[static_cast<std::size_t>(t)];
      mine.reserve(static_cast<std::size_t>(ops / threads + 16));
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      while (next.fetch_add(1, std::memory_order_relaxed) < ops) {
        const auto start = Clock::now();
        if (!client(t)) errors.fetch_add(1, std::memory_order_relaxed);
        mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
      }
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  const auto t0 = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto& worker : workers) worker.join();
  run.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  run.errors += errors.load();
  for (const auto& mine : latencies)
    run.latencies_us.insert(run.latencies_us.end(), mine.begin(), mine.end());
}

void print_run(const char* name, int round, const Options& options, Run& run, bool truncated) {
  std::sort(run.latencies_us.begin(), run.latencies_us.end());
  std::printf(
      "{\"name\":\"%s\",\"kind\":\"http\",\"round\":%d,\"ops\":%zu,\"seconds\":%.4f,"
      "\"ops_per_s\":%.1f,\"p50_us\":%.3f,\"p99_us\":%.3f,\"errors\":%ld,\"inflight\":%d,"
      "\"slices\":%d,\"path\":\"%s\",\"truncated\":%s}\n",
      name, round, run.latencies_us.size(), run.seconds, run.ops_per_s(),
      percentile(run.latencies_us, 0.5), percentile(run.latencies_us, 0.99), run.errors,
      options.threads, options.slices, options.path.c_str(), truncated ? "true" : "false");
  std::fflush(stdout);
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--port P] [--ops N] [--threads T] [--rounds R] [--slices S] "
               "[--path PATH] [--server-threads N]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) return usage(argv[0]);
    const char* value = argv[++i];
    if (arg == "--port") {
      options.port = std::atoi(value);
    } else if (arg == "--ops") {
      options.ops = std::atol(value);
    } else if (arg == "--threads") {
      options.threads = std::atoi(value);
    } else if (arg == "--rounds") {
      options.rounds = std::atoi(value);
    } else if (arg == "--slices") {
      options.slices = std::atoi(value);
    } else if (arg == "--path") {
      options.path = value;
    } else if (arg == "--server-threads") {
      options.server_threads = static_cast<std::size_t>(std::atol(value));
    } else {
      return usage(argv[0]);
    }
  }
  if (options.ops <= 0 || options.threads <= 0 || options.rounds <= 0 || options.slices <= 0 ||
      options.port < 0) {
    return usage(argv[0]);
  }

  std::unique_ptr<test_api::Server> server;
  if (options.port == 0) {
    server =
        std::make_unique<test_api::Server>(test_api::Options{.threads = options.server_threads});
    options.port = server->port();
  }
  std::fprintf(stderr,
               "http_load: 127.0.0.1:%d%s, %ld x GET %s, %d threads, %d rounds of %d slices\n",
               options.port, server ? " (in-process test API)" : "", options.ops,
               options.path.c_str(), options.threads, options.rounds, options.slices);

  RawClients raw{options};
  BulwarkClient ours{options};
  {  // Warm-up, not measured: opens every connection, faults in the code paths.
    Run ignored;
    run_slice(raw, options.threads, 100L * options.threads, ignored);
    run_slice(ours, options.threads, 100L * options.threads, ignored);
  }

  const auto give_up = Clock::now() + 120s;
  const long slice_ops = std::max(1L, options.ops / options.slices);
  std::vector<double> throughput_ratios, p99_ratios;
  long errors = 0;
  bool truncated = false;
  for (int round = 1; round <= options.rounds && !truncated; ++round) {
    Run raw_run, our_run;
    for (int slice = 0; slice < options.slices; ++slice) {
      if (Clock::now() > give_up) {
        truncated = true;
        break;
      }
      if ((slice + round) % 2 == 0) {
        run_slice(raw, options.threads, slice_ops, raw_run);
        run_slice(ours, options.threads, slice_ops, our_run);
      } else {
        run_slice(ours, options.threads, slice_ops, our_run);
        run_slice(raw, options.threads, slice_ops, raw_run);
      }
    }
    print_run("http/cpp-httplib-raw", round, options, raw_run, truncated);
    print_run("http/bulwark", round, options, our_run, truncated);
    errors += raw_run.errors + our_run.errors;
    const double raw_p99 = percentile(raw_run.latencies_us, 0.99);
    throughput_ratios.push_back(raw_run.ops_per_s() > 0 ? our_run.ops_per_s() / raw_run.ops_per_s()
                                                        : 0);
    p99_ratios.push_back(raw_p99 > 0 ? percentile(our_run.latencies_us, 0.99) / raw_p99 : 0);
  }
  const double throughput = median(throughput_ratios);
  const double p99 = median(p99_ratios);
  const bool pass = throughput >= 0.95 && p99 <= 1.10 && errors == 0 && !truncated;
  std::printf(
      "{\"name\":\"http/bulwark-vs-raw\",\"kind\":\"summary\",\"rounds\":%zu,"
      "\"median_ops_per_s_ratio\":%.4f,\"median_p99_ratio\":%.4f,\"errors\":%ld,"
      "\"goal\":\"ops ratio >= 0.95 and p99 ratio <= 1.10\",\"pass\":%s}\n",
      throughput_ratios.size(), throughput, p99, errors, pass ? "true" : "false");
  return pass ? 0 : 1;
}
