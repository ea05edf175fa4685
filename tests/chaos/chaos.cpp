// tests/chaos/chaos.cpp — a chaos run of ResilientHttpClient against the in-process test API
// (examples/test_api_server.hpp) with every fault on at once, checking that nothing hangs, leaks
// or goes uncounted. A program, not a Catch2 suite: CTest runs it as `chaos` (label chaos).
//
//   build/release/tests/chaos/bulwark_chaos                     # CTest `chaos`: 16 x 20,000 calls
//   build/release/tests/chaos/bulwark_chaos --soak 10           # soak: 10 minutes of chaos
//   bulwark_chaos [--threads 16] [--requests 20000] [--seconds 50] [--soak MINUTES]
//                 [--margin-ms 100] [--rss-bound-mib 8]
//
// The soak variant is the CTest test `chaos_soak` only when configured with
// -DBULWARK_CHAOS_SOAK_MINUTES=N (not registered by default); by hand it is the line above.
//
// Phases, all against one client and one server (the server runs throughout):
//   chaos     --threads callers make --requests calls (--soak: for that many minutes) while
//             about 30% of the attempts fail: 5% stall 300 ms (past the client's 100 ms read
//             timeout), 5% get 429 with Retry-After: 1 (beyond retry.max_delay: not retried),
//             15% get 503 or 500, 9% are cut mid-body (connection closed); an outage of 90
//             consecutive 503s trips the breaker every 5,000 calls (at most 4, spread evenly; in a
//             soak, every 30 s). Bulkhead: threads - 2 slots, a queue of 1. Every call has a Context
//             deadline: 400 ms, or 150 ms for one call in ten. A caller turned away by the breaker
//             or the rate limiter pauses min(retry_after, 20 ms), as a real client would back
//             off, so open periods do not burn the request budget in microseconds.
//   outage    every request answered 5xx; the callers go on until the breaker is open.
//   recovery  faults off; one caller until the breaker is closed again and 50 calls in a row
//             succeeded.
// Checks (any failure: exit status 1; a hang: the watchdog exits 3):
//   - every call ended in a response or a typed error (http_error, transport_error, a
//     bulwark::error), each by its deadline plus --margin-ms;
//   - calls = successes + each kind of error; the latency histogram holds every call;
//   - attempts (RetryMetrics::attempts) = the successful ones (one per successful call) + the
//     failed ones by kind, as the retry stage's retry_on predicate was asked about each;
//   - the server received every attempt that went out: attempts minus those that never left the
//     client equals the server's count. An attempt that failed with pool_exhausted_error was
//     never sent; one that failed with deadline_exceeded_error or transport_error{connect} may
//     not have been, so  attempts - pool_exhausted - deadline_exceeded - connect <= server <=
//     attempts - pool_exhausted  (rejections by the rate limiter, bulkhead or breaker are not
//     attempts; a stalled request the client gave up on still counts: the server counts on
//     receipt, and its count is polled for up to 2 s to let the last requests arrive);
//   - the breaker opened during the chaos, opened in the outage, and closed again once the
//     faults stopped;
//   - no file descriptor or thread outlives the client: /proc/self/fd and /proc/self/task are
//     counted with the server already running, before the client exists and after it is gone
//     (polled for up to 2 s: the server closes its side of a connection a moment later, and a
//     stalled handler holds its connection until the stall ends);
//   - memory stays flat: VmRSS at the end of the last quarter is at most --rss-bound-mib above
//     VmRSS at the end of the first (not checked under ASan or TSan, whose quarantine and shadow
//     memory grow by design; LeakSanitizer checks for leaks at exit there).
// A warm-up client makes one request and is destroyed before anything is counted, so one-time,
// process-wide initialisation does not look like a leak.
#include <unistd.h>

#include <bulwark/http.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../../examples/test_api_server.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using bulwark::CircuitState;
using bulwark::http::ResilientHttpClient;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
#else
constexpr bool sanitized = false;
#endif

// ---- options ----

struct Options {
  int threads = 16;
  std::uint64_t requests = 20'000;
  int seconds = 50;  // cap on the chaos phase (bounded run)
  double soak_minutes = 0;
  int margin_ms = 100;
  int rss_bound_mib = 8;
};

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--threads N] [--requests N] [--seconds S] [--soak MINUTES]\n"
               "          [--margin-ms N] [--rss-bound-mib N]\n",
               argv0);
  return 2;
}

// ---- the fault mix and the client's config ----

constexpr int server_stall_ms = 300;  // server stall; the client's read timeout is 100 ms
constexpr int outage_503s = 90;       // 3 attempts each: about 30 failed calls, past the threshold

test_api::Faults chaos_faults() {
  return test_api::Faults{.failure_rate = 0.15,  // half 503, half 500
                          .retry_after = 1,      // seconds, beyond retry.max_delay
                          .stall_ms = server_stall_ms,
                          .reset_rate = 0.09,
                          .rate_429 = 0.05,
                          .stall_rate = 0.05};
}

// The share of attempts that fail when every draw is independent.
double fault_share(const test_api::Faults& f) {
  return 1.0 -
         (1.0 - f.stall_rate) * (1.0 - f.rate_429) * (1.0 - f.failure_rate) * (1.0 - f.reset_rate);
}

// ---- outcomes ----

enum Outcome : std::size_t {
  success,
  http_500,
  http_503,
  http_429,
  http_other,
  transport_timeout,
  transport_connection_reset,
  transport_read,
  transport_write,
  transport_connect,
  transport_tls,
  transport_body_too_large,
  circuit_open,
  bulkhead_queue_full,
  bulkhead_queue_timeout,
  rate_limited,
  pool_exhausted,
  deadline_exceeded,
  cancelled,
  bulwark_other,
  untyped,
  outcome_count
};

constexpr std::array<std::string_view, outcome_count> outcome_names = {
    "response (status < 400)",
    "http_error 500",
    "http_error 503",
    "http_error 429",
    "http_error other",
    "transport_error timeout",
    "transport_error connection_reset",
    "transport_error read",
    "transport_error write",
    "transport_error connect",
    "transport_error tls",
    "transport_error body_too_large",
    "circuit_open_error",
    "bulkhead_rejected_error queue_full",
    "bulkhead_rejected_error queue_timeout",
    "rate_limited_error",
    "pool_exhausted_error",
    "deadline_exceeded_error",
    "cancelled_error",
    "bulwark::error (other)",
    "UNTYPED exception",
};

Outcome transport_outcome(bulwark::http::TransportErrorKind kind) {
  using bulwark::http::TransportErrorKind;
  switch (kind) {
    case TransportErrorKind::timeout:
      return transport_timeout;
    case TransportErrorKind::connection_reset:
      return transport_connection_reset;
    case TransportErrorKind::read:
      return transport_read;
    case TransportErrorKind::write:
      return transport_write;
    case TransportErrorKind::connect:
      return transport_connect;
    case TransportErrorKind::tls:
      return transport_tls;
    case TransportErrorKind::body_too_large:
      return transport_body_too_large;
  }
  return untyped;
}

// Latency in fixed memory (a soak must not grow): 10 us buckets below 100 ms, 1 ms buckets from
// 100 ms to 10 s, one overflow bucket. 160 KiB.
struct Histogram {
  static constexpr std::size_t fine = 10'000;
  static constexpr std::size_t coarse = 9'900;
  std::array<std::uint64_t, fine + coarse + 1> counts{};

  void add(Clock::duration d) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    std::size_t i = 0;
    if (us < 100'000) {
      i = static_cast<std::size_t>(std::max<std::int64_t>(us, 0) / 10);
    } else {
      i = std::min<std::size_t>(fine + static_cast<std::size_t>((us - 100'000) / 1'000),
                                fine + coarse);
    }
    ++counts[i];
  }
  // The upper edge of bucket i, in ms.
  static double upper_ms(std::size_t i) {
    return i < fine ? static_cast<double>(i + 1) * 0.01 : 100.0 + static_cast<double>(i - fine + 1);
  }
  void merge(const Histogram& other) {
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] += other.counts[i];
  }
  [[nodiscard]] std::uint64_t total() const {
    std::uint64_t n = 0;
    for (const auto c : counts) n += c;
    return n;
  }
  [[nodiscard]] double percentile_ms(double p) const {
    const std::uint64_t n = total();
    if (n == 0) return 0.0;
    const auto rank = static_cast<std::uint64_t>(p * static_cast<double>(n - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
      seen += counts[i];
      if (seen >= rank) return upper_ms(i);
    }
    return upper_ms(counts.size() - 1);
  }
};

// What one caller saw; merged after the callers are joined.
struct Tally {
  std::uint64_t calls = 0;
  std::array<std::uint64_t, outcome_count> outcomes{};
  Histogram latency;
  Clock::duration max_latency{0};
  Clock::duration max_overrun{Clock::duration::min()};  // end - deadline, largest
  std::uint64_t late = 0;                               // ended after deadline + margin
  std::string first_untyped;

  void merge(const Tally& other) {
    calls += other.calls;
    for (std::size_t i = 0; i < outcome_count; ++i) outcomes[i] += other.outcomes[i];
    latency.merge(other.latency);
    max_latency = std::max(max_latency, other.max_latency);
    max_overrun = std::max(max_overrun, other.max_overrun);
    late += other.late;
    if (first_untyped.empty()) first_untyped = other.first_untyped;
  }
  [[nodiscard]] std::uint64_t outcome_sum() const {
    std::uint64_t n = 0;
    for (const auto c : outcomes) n += c;
    return n;
  }
};

// The outcome an exception stands for; untyped for anything but the client's documented errors.
Outcome classify(const std::exception& e) {
  if (const auto* status = dynamic_cast<const bulwark::http::http_error*>(&e)) {
    return status->status() == 500   ? http_500
           : status->status() == 503 ? http_503
           : status->status() == 429 ? http_429
                                     : http_other;
  }
  if (const auto* transport = dynamic_cast<const bulwark::http::transport_error*>(&e))
    return transport_outcome(transport->kind());
  if (dynamic_cast<const bulwark::circuit_open_error*>(&e) != nullptr) return circuit_open;
  if (const auto* bulkhead = dynamic_cast<const bulwark::bulkhead_rejected_error*>(&e)) {
    return bulkhead->reason() == bulwark::BulkheadRejection::queue_full ? bulkhead_queue_full
                                                                        : bulkhead_queue_timeout;
  }
  if (dynamic_cast<const bulwark::rate_limited_error*>(&e) != nullptr) return rate_limited;
  if (dynamic_cast<const bulwark::pool_exhausted_error*>(&e) != nullptr) return pool_exhausted;
  if (dynamic_cast<const bulwark::deadline_exceeded_error*>(&e) != nullptr)
    return deadline_exceeded;
  if (dynamic_cast<const bulwark::cancelled_error*>(&e) != nullptr) return cancelled;
  if (dynamic_cast<const bulwark::error*>(&e) != nullptr) return bulwark_other;
  return untyped;
}

// Failed attempts by kind, counted by the retry stage's retry_on (asked about every failed
// attempt, the last one included).
struct AttemptFailures {
  std::array<std::atomic<std::uint64_t>, outcome_count> counts{};
  [[nodiscard]] std::uint64_t total() const {
    std::uint64_t n = 0;
    for (const auto& c : counts) n += c.load();
    return n;
  }
};

// ---- the client's config ----

struct BreakerTransitions {
  std::atomic<std::uint64_t> opened{0};
  std::atomic<std::uint64_t> half_opened{0};
  std::atomic<std::uint64_t> closed{0};
};

bulwark::http::ResilienceConfig chaos_config(int threads, BreakerTransitions* transitions,
                                             AttemptFailures* failures) {
  auto config = bulwark::http::production_config();
  // Two callers more than slots: some queue, a few are turned away (queue_full, queue_timeout).
  const auto slots = static_cast<std::size_t>(std::max(1, threads - 2));
  config.bulkhead.max_concurrent = slots;
  config.bulkhead.max_queue = 1;
  config.bulkhead.queue_timeout = 50ms;
  // A connection for every slot: an attempt never waits for one.
  config.pool.connections = slots;
  config.pool.connect_timeout = 100ms;
  config.pool.headers_timeout = 100ms;
  config.pool.body_timeout = 100ms;
  config.pool.keep_alive_timeout = 2s;
  // High enough never to bind at this load; it is in the stack all the same.
  config.rate_limiter.max_requests = 100'000;
  config.rate_limiter.window = 1s;
  config.rate_limiter.burst = 1'000;
  config.retry.max_attempts = 3;
  config.retry.initial_delay = 2ms;
  config.retry.max_delay = 20ms;
  config.retry.jitter_factor = 0.1;
  config.retry.retry_on = [failures](const std::exception& e) {
    failures->counts[classify(e)].fetch_add(1, std::memory_order_relaxed);  // read after join
    return bulwark::http::is_upstream_failure(e);
  };
  config.circuit_breaker.failure_threshold = 25;
  config.circuit_breaker.success_threshold = 2;
  config.circuit_breaker.open_timeout = 200ms;
  config.circuit_breaker.monitoring_period = 100ms;
  config.circuit_breaker.on_state_change = [transitions](CircuitState, CircuitState to) {
    // relaxed: counters read after the threads are joined.
    switch (to) {
      case CircuitState::open:
        transitions->opened.fetch_add(1, std::memory_order_relaxed);
        break;
      case CircuitState::half_open:
        transitions->half_opened.fetch_add(1, std::memory_order_relaxed);
        break;
      case CircuitState::closed:
        transitions->closed.fetch_add(1, std::memory_order_relaxed);
        break;
    }
  };
  return config;
}

// One call through the client: records its outcome and timing. Returns the outcome and, for a
// rejection carrying a retry hint, how long the caller should pause.
struct CallResult {
  Outcome outcome;
  std::chrono::milliseconds pause{0};
};

CallResult one_call(ResilientHttpClient& client, std::uint64_t index, Clock::duration budget,
                    Clock::duration margin, Tally& tally) {
  bulwark::http::Request request;
  request.path = "/users/" + std::to_string(index % 1000);
  const auto start = Clock::now();
  const bulwark::Context ctx{.deadline = start + budget};
  CallResult result{untyped};
  ++tally.calls;
  try {
    const auto response = client.request(std::move(request), ctx);
    (void)response;  // any status below 400
    result.outcome = success;
  } catch (const std::exception& e) {
    result.outcome = classify(e);
    if (const auto* hint = dynamic_cast<const bulwark::retry_hint*>(&e))
      result.pause = hint->retry_after();
    if (result.outcome == untyped && tally.first_untyped.empty()) tally.first_untyped = e.what();
  } catch (...) {
    result.outcome = untyped;
    if (tally.first_untyped.empty()) tally.first_untyped = "(not a std::exception)";
  }
  const auto end = Clock::now();
  ++tally.outcomes[result.outcome];
  tally.latency.add(end - start);
  tally.max_latency = std::max(tally.max_latency, end - start);
  const auto overrun = end - *ctx.deadline;
  tally.max_overrun = std::max(tally.max_overrun, overrun);
  if (overrun > margin) ++tally.late;
  return result;
}

// A caller turned away by a policy backs off before its next call, as a real client would:
// min(retry_after, 20 ms) after the breaker or the rate limiter, 2 ms after the bulkhead.
void pause_after(const CallResult& result) {
  switch (result.outcome) {
    case circuit_open:
    case rate_limited:
      std::this_thread::sleep_for(std::clamp(result.pause, std::chrono::milliseconds{1}, 20ms));
      break;
    case bulkhead_queue_full:
    case bulkhead_queue_timeout:
      std::this_thread::sleep_for(2ms);
      break;
    default:
      break;
  }
}

// ---- /proc ----

std::size_t count_entries(const char* dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator{dir}) ++n;
  return n;
}

// The fewest entries seen over 200 ms: transient ones (a connection closing) only add.
std::size_t settled_count(const char* dir) {
  std::size_t fewest = count_entries(dir);
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds{200}) {
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
    fewest = std::min(fewest, count_entries(dir));
  }
  return fewest;
}

// A "VmRSS:" style line of /proc/self/status, in KiB.
std::uint64_t status_kib(std::string_view field) {
  std::ifstream status{"/proc/self/status"};
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with(field)) return std::strtoull(line.c_str() + field.size(), nullptr, 10);
  }
  return 0;
}

double mib(std::uint64_t kib) { return static_cast<double>(kib) / 1024.0; }

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// ---- checks ----

int failed_checks = 0;

void check(bool ok, const std::string& what) {
  std::printf("  [%s] %s\n", ok ? " ok " : "FAIL", what.c_str());
  if (!ok) ++failed_checks;
}

std::string text(const char* format, auto... args) {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, format, args...);
  return buffer;
}

extern "C" void watchdog(int) {
  static const char message[] =
      "\nbulwark_chaos: WATCHDOG: the run did not finish in time (hung)\n";
  (void)!::write(STDERR_FILENO, message, sizeof message - 1);
  ::_exit(3);
}

void print_outcomes(const char* title, const Tally& tally) {
  std::printf("%s: %llu calls\n", title, static_cast<unsigned long long>(tally.calls));
  for (std::size_t i = 0; i < outcome_count; ++i) {
    if (tally.outcomes[i] != 0 || i == success || i == untyped) {
      std::printf("    %-40s %8llu\n", std::string(outcome_names[i]).c_str(),
                  static_cast<unsigned long long>(tally.outcomes[i]));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(std::string(arg) + " needs a value");
        return argv[++i];
      };
      if (arg == "--threads") {
        options.threads = std::stoi(value());
      } else if (arg == "--requests") {
        options.requests = std::stoull(value());
      } else if (arg == "--seconds") {
        options.seconds = std::stoi(value());
      } else if (arg == "--soak") {
        options.soak_minutes = std::stod(value());
      } else if (arg == "--margin-ms") {
        options.margin_ms = std::stoi(value());
      } else if (arg == "--rss-bound-mib") {
        options.rss_bound_mib = std::stoi(value());
      } else {
        return usage(argv[0]);
      }
    }
    if (options.threads < 1 || options.requests < 1 || options.seconds < 1 ||
        options.soak_minutes < 0 || options.margin_ms < 0 || options.rss_bound_mib < 0) {
      throw std::invalid_argument("values must be positive");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bulwark_chaos: bad arguments: %s\n", e.what());
    return usage(argv[0]);
  }

  const bool soak = options.soak_minutes > 0;
  const auto soak_duration = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::ratio<60>>{options.soak_minutes});
  const auto cap = soak ? soak_duration : Clock::duration{std::chrono::seconds{options.seconds}};
  const std::uint64_t requests = soak ? UINT64_MAX : options.requests;
  // Outages spread evenly: one per 5,000 calls (1 to 4), or one every 30 s or so in a soak.
  const int outages = soak ? std::max(4, static_cast<int>(options.soak_minutes * 2))
                           : static_cast<int>(std::clamp<std::uint64_t>(requests / 5'000, 1, 4));
  const auto margin = std::chrono::milliseconds{options.margin_ms};

  std::signal(SIGPIPE, SIG_IGN);  // the server writes to connections the client gave up on
  std::signal(SIGALRM, watchdog);
  alarm(static_cast<unsigned>(std::chrono::duration_cast<std::chrono::seconds>(cap).count()) + 60);

  const auto run_start = Clock::now();
  // Workers for every live connection plus the handlers still sleeping out a stall.
  test_api::Server server{{.threads = 128, .keep_alive_timeout_s = 5}};
  BreakerTransitions transitions;
  AttemptFailures attempt_failures;
  {
    BreakerTransitions ignored;
    AttemptFailures ignored_failures;
    ResilientHttpClient warm_up{server.base_url(),
                                chaos_config(options.threads, &ignored, &ignored_failures)};
    for (int i = 0; i < 5; ++i) {  // a slow start (TSan) may time the first one out
      try {
        (void)warm_up.get("/users/1");
        break;
      } catch (const std::exception&) {
      }
    }
  }
  server.reset();

  const test_api::Faults faults = chaos_faults();
  std::printf(
      "bulwark_chaos: %d threads, %s, every fault on: ~%.0f%% of attempts fail (stall %.0f%% x %d "
      "ms vs read timeout 100 ms, 429 %.0f%% with Retry-After %d s, 503/500 %.0f%%, reset "
      "mid-body %.0f%%) + %d outages of %d x 503; deadlines 400 ms (150 ms for "
      "1 call in 10)\n",
      options.threads,
      soak ? text("soak for %.1f min", options.soak_minutes).c_str()
           : text("%llu requests (cap %d s)", static_cast<unsigned long long>(requests),
                  options.seconds)
                 .c_str(),
      100 * fault_share(faults), 100 * faults.stall_rate, faults.stall_ms, 100 * faults.rate_429,
      faults.retry_after, 100 * faults.failure_rate, 100 * faults.reset_rate, outages, outage_503s);

  std::vector<std::unique_ptr<Tally>> tallies;
  std::vector<std::unique_ptr<Tally>> final_tallies;  // the outage and recovery phases
  for (int i = 0; i < options.threads; ++i) {
    tallies.push_back(std::make_unique<Tally>());
    final_tallies.push_back(std::make_unique<Tally>());
  }

  // The server closes its end of the warm-up connection a moment after the client did.
  const std::size_t fds_before = settled_count("/proc/self/fd");
  const std::size_t threads_before = settled_count("/proc/self/task");

  auto client = std::make_unique<ResilientHttpClient>(
      server.base_url(), chaos_config(options.threads, &transitions, &attempt_failures));

  // ---- chaos ----
  std::atomic<std::uint64_t> next_call{0};
  std::atomic<std::uint64_t> completed{0};
  std::atomic<bool> cap_hit{false};
  std::array<std::uint64_t, 4> quarter_rss{};
  std::atomic<int> quarters_sampled{0};
  std::atomic<int> outages_started{0};
  const auto chaos_start = Clock::now();
  // How far the chaos phase is, in [0, 1]: calls made, or time in a soak.
  auto progress = [&](std::uint64_t done) {
    if (soak) return std::min(1.0, ms(Clock::now() - chaos_start) / ms(cap));
    return static_cast<double>(done) / static_cast<double>(requests);
  };
  // Runs step(k) once for each k below `reached`, whichever thread gets there first.
  auto once_each = [](std::atomic<int>& done, int reached, auto step) {
    int next = done.load();
    while (next < reached) {
      if (done.compare_exchange_weak(next, next + 1)) step(next++);
    }
  };
  auto sample_quarters = [&](int reached) {
    once_each(quarters_sampled, reached, [&](int quarter) {
      quarter_rss[static_cast<std::size_t>(quarter)] = status_kib("VmRSS:");
    });
  };

  server.set_faults(faults);
  std::vector<std::thread> callers;
  callers.reserve(static_cast<std::size_t>(options.threads));
  for (int t = 0; t < options.threads; ++t) {
    callers.emplace_back([&, t] {
      Tally& tally = *tallies[static_cast<std::size_t>(t)];
      for (;;) {
        const auto elapsed = Clock::now() - chaos_start;
        if (elapsed >= cap) {
          if (!soak) cap_hit.store(true);
          return;
        }
        const std::uint64_t index = next_call.fetch_add(1);
        if (index >= requests) return;
        const auto budget = index % 10 == 0 ? Clock::duration{150ms} : Clock::duration{400ms};
        const CallResult result = one_call(*client, index, budget, margin, tally);
        const double done = progress(completed.fetch_add(1) + 1);
        sample_quarters(static_cast<int>(done * 4));
        once_each(outages_started, static_cast<int>(std::floor(done * outages + 0.5)), [&](int) {
          auto f = server.faults();
          f.burst_503 = outage_503s;  // the next requests the server receives
          server.set_faults(f);
        });
        pause_after(result);
      }
    });
  }
  for (auto& caller : callers) caller.join();
  callers.clear();
  const auto chaos_duration = Clock::now() - chaos_start;
  sample_quarters(4);
  const std::uint64_t opened_in_chaos = transitions.opened.load();
  const std::uint64_t closed_in_chaos = transitions.closed.load();
  const std::uint64_t half_opened_in_chaos = transitions.half_opened.load();

  // ---- outage: every request fails until the breaker opens ----
  server.set_faults({.failure_rate = 1.0});
  const auto outage_start = Clock::now();
  std::atomic<bool> opened_in_outage{false};
  for (int t = 0; t < options.threads; ++t) {
    callers.emplace_back([&, t] {
      Tally& tally = *final_tallies[static_cast<std::size_t>(t)];
      while (!opened_in_outage.load() && Clock::now() - outage_start < 5s) {
        const CallResult result = one_call(*client, 1, 1s, margin, tally);
        if (client->metrics().circuit_breaker.state == CircuitState::open)
          opened_in_outage.store(true);
        pause_after(result);
      }
    });
  }
  for (auto& caller : callers) caller.join();
  callers.clear();
  const auto outage_duration = Clock::now() - outage_start;

  // ---- recovery: faults off; until closed and 50 successes in a row ----
  server.set_faults({});
  const auto recovery_start = Clock::now();
  std::optional<Clock::duration> closed_after;
  int successes_in_row = 0;
  while (Clock::now() - recovery_start < 5s && successes_in_row < 50) {
    const CallResult result = one_call(*client, 2, 1s, margin, *final_tallies[0]);
    successes_in_row = result.outcome == success ? successes_in_row + 1 : 0;
    if (!closed_after && client->metrics().circuit_breaker.state == CircuitState::closed)
      closed_after = Clock::now() - recovery_start;
    pause_after(result);
  }
  const auto recovery_duration = Clock::now() - recovery_start;
  const CircuitState final_state = client->metrics().circuit_breaker.state;

  // ---- accounting ----
  Tally chaos_total;
  for (const auto& tally : tallies) chaos_total.merge(*tally);
  Tally final_total;
  for (const auto& tally : final_tallies) final_total.merge(*tally);
  Tally all = chaos_total;
  all.merge(final_total);
  const auto metrics = client->metrics();
  const std::uint64_t attempts = metrics.retry.attempts;
  const std::uint64_t failed_attempts = attempt_failures.total();
  const std::uint64_t unsent = attempt_failures.counts[pool_exhausted].load();
  const std::uint64_t maybe_unsent = attempt_failures.counts[deadline_exceeded].load() +
                                     attempt_failures.counts[transport_connect].load();
  const std::uint64_t unsent_max = unsent + maybe_unsent;
  const std::uint64_t expected_max = attempts - unsent;
  const std::uint64_t expected_min = attempts >= unsent_max ? attempts - unsent_max : 0;
  // A request the client sent just before giving up may still be on its way to a handler.
  std::uint64_t server_requests = server.stats().requests;
  {
    const auto wait_start = Clock::now();
    auto last_change = wait_start;
    while (server_requests != expected_max && Clock::now() - wait_start < 2s &&
           (server_requests < expected_min || Clock::now() - last_change < 300ms)) {
      std::this_thread::sleep_for(5ms);
      const std::uint64_t now_seen = server.stats().requests;
      if (now_seen != server_requests) last_change = Clock::now();
      server_requests = now_seen;
    }
  }
  const test_api::Stats server_stats = server.stats();

  // ---- the client goes; its fds and threads must go with it ----
  client.reset();
  const auto settle_start = Clock::now();
  std::size_t fds_after = count_entries("/proc/self/fd");
  std::size_t threads_after = count_entries("/proc/self/task");
  while ((fds_after > fds_before || threads_after > threads_before) &&
         Clock::now() - settle_start < 2s) {
    std::this_thread::sleep_for(10ms);
    fds_after = count_entries("/proc/self/fd");
    threads_after = count_entries("/proc/self/task");
  }
  const auto settled_in = Clock::now() - settle_start;
  const std::uint64_t hwm = status_kib("VmHWM:");
  const auto duration = Clock::now() - run_start;

  // ---- figures ----
  std::printf("\n");
  print_outcomes(text("chaos phase (%.2f s)", ms(chaos_duration) / 1000).c_str(), chaos_total);
  print_outcomes(text("outage + recovery phases (%.0f ms + %.0f ms)", ms(outage_duration),
                      ms(recovery_duration))
                     .c_str(),
                 final_total);
  {
    Tally attempts_view;
    for (std::size_t i = 0; i < outcome_count; ++i)
      attempts_view.outcomes[i] = attempt_failures.counts[i].load();
    attempts_view.outcomes[success] = metrics.retry.attempts - attempt_failures.total();
    attempts_view.calls = metrics.retry.attempts;
    print_outcomes("attempts (all phases; failures as retry_on saw them)", attempts_view);
  }
  std::printf(
      "latency (chaos): p50 %.2f ms, p99 %.2f ms, max %.1f ms; latest end past its deadline "
      "%+.1f ms (margin %d ms)\n",
      chaos_total.latency.percentile_ms(0.50), chaos_total.latency.percentile_ms(0.99),
      ms(chaos_total.max_latency), ms(all.max_overrun), options.margin_ms);
  std::printf(
      "breaker: in chaos opened %llu, half-opened %llu, closed %llu times; outage opened it in "
      "%.0f ms; closed %s after the faults stopped\n",
      static_cast<unsigned long long>(opened_in_chaos),
      static_cast<unsigned long long>(half_opened_in_chaos),
      static_cast<unsigned long long>(closed_in_chaos), ms(outage_duration),
      closed_after ? text("%.0f ms", ms(*closed_after)).c_str() : "never");
  std::printf(
      "client: attempts %zu (retries %zu, exhausted %zu), pool created %zu, discarded %zu\n",
      metrics.retry.attempts, metrics.retry.retries, metrics.retry.exhausted, metrics.pool.created,
      metrics.pool.discarded);
  std::printf(
      "server: requests %llu, connections %llu, injected %llu, stalled %llu (%.1f%% of requests "
      "faulty)\n",
      static_cast<unsigned long long>(server_stats.requests),
      static_cast<unsigned long long>(server_stats.connections),
      static_cast<unsigned long long>(server_stats.injected),
      static_cast<unsigned long long>(server_stats.stalled),
      server_stats.requests == 0
          ? 0.0
          : 100.0 * static_cast<double>(server_stats.injected + server_stats.stalled) /
                static_cast<double>(server_stats.requests));
  std::printf("fds: before %zu, after %zu; threads: before %zu, after %zu (settled in %.0f ms)\n",
              fds_before, fds_after, threads_before, threads_after, ms(settled_in));
  std::printf(
      "memory: VmRSS at the end of each quarter %.1f / %.1f / %.1f / %.1f MiB; "
      "VmHWM %.1f MiB\n",
      mib(quarter_rss[0]), mib(quarter_rss[1]), mib(quarter_rss[2]), mib(quarter_rss[3]), mib(hwm));
  std::printf("duration: %.2f s\n", ms(duration) / 1000);

  // ---- checks ----
  std::printf("\nchecks:\n");
  if (!soak) {
    check(!cap_hit.load() && chaos_total.calls == requests,
          text("the chaos phase made all %llu calls within %d s (made %llu)",
               static_cast<unsigned long long>(requests), options.seconds,
               static_cast<unsigned long long>(chaos_total.calls)));
  }
  check(all.outcomes[untyped] == 0,
        text("every call ended in a response or a typed error (untyped: %llu%s%s)",
             static_cast<unsigned long long>(all.outcomes[untyped]),
             all.first_untyped.empty() ? "" : ", first: ", all.first_untyped.c_str()));
  check(all.late == 0,
        text("every call ended by its deadline + %d ms (late: %llu, worst %+.1f ms)",
             options.margin_ms, static_cast<unsigned long long>(all.late), ms(all.max_overrun)));
  check(all.calls == all.outcome_sum() && all.calls == all.latency.total(),
        text("calls %llu = successes %llu + errors %llu (latencies recorded: %llu)",
             static_cast<unsigned long long>(all.calls),
             static_cast<unsigned long long>(all.outcomes[success]),
             static_cast<unsigned long long>(all.outcome_sum() - all.outcomes[success]),
             static_cast<unsigned long long>(all.latency.total())));
  check(attempts == all.outcomes[success] + failed_attempts,
        text("client attempts %llu = successful %llu + failed %llu",
             static_cast<unsigned long long>(attempts),
             static_cast<unsigned long long>(all.outcomes[success]),
             static_cast<unsigned long long>(failed_attempts)));
  check(server_requests >= expected_min && server_requests <= expected_max,
        text("server requests %llu = client attempts %llu - never sent %llu (pool_exhausted) - "
             "not sent %lld of %llu that may not have been (deadline_exceeded, connect)",
             static_cast<unsigned long long>(server_requests),
             static_cast<unsigned long long>(attempts), static_cast<unsigned long long>(unsent),
             static_cast<long long>(expected_max) - static_cast<long long>(server_requests),
             static_cast<unsigned long long>(maybe_unsent)));
  check(opened_in_chaos >= 1, text("the breaker opened during the chaos (%llu times)",
                                   static_cast<unsigned long long>(opened_in_chaos)));
  check(opened_in_outage.load(), "the breaker opened in the outage");
  check(final_state == CircuitState::closed && closed_after.has_value() && successes_in_row >= 50,
        text("the breaker closed again once the faults stopped (%s, then %d successes in a row)",
             closed_after ? text("after %.0f ms", ms(*closed_after)).c_str() : "never",
             successes_in_row));
  check(fds_after <= fds_before,
        text("no file descriptor outlived the client (%zu before, %zu after)", fds_before,
             fds_after));
  check(
      threads_after <= threads_before,
      text("no thread outlived the client (%zu before, %zu after)", threads_before, threads_after));
  const std::int64_t growth_kib =
      static_cast<std::int64_t>(quarter_rss[3]) - static_cast<std::int64_t>(quarter_rss[0]);
  if (sanitized) {
    std::printf("  [skip] memory flat: not checked under a sanitizer (growth %+.1f MiB)\n",
                static_cast<double>(growth_kib) / 1024.0);
  } else {
    check(growth_kib <= std::int64_t{options.rss_bound_mib} * 1024,
          text("memory flat: last-quarter VmRSS %+.1f MiB from the first (bound +%d MiB)",
               static_cast<double>(growth_kib) / 1024.0, options.rss_bound_mib));
  }
  std::printf("\nbulwark_chaos: %s\n", failed_checks == 0 ? "PASS" : "FAIL");
  alarm(0);
  return failed_checks == 0 ? 0 : 1;
}
