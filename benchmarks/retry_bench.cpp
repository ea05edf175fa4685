// Benchmarks of bulwark/retry.hpp. Read BM_Retry_SuccessPath against BM_Baseline_DirectCall
// (benchmarks/main.cpp), which does the same unit of work without the strategy: the difference is
// what a first-attempt success costs (one relaxed atomic increment, the `calls` counter).
#include <bulwark/retry.hpp>

#include <atomic>
#include <stdexcept>
#include <stop_token>

#include <benchmark/benchmark.h>

namespace {

/// The unit of work, as in benchmarks/main.cpp: a real call the optimiser cannot remove.
[[gnu::noinline]] int retry_work(int value) {
  asm volatile("" : "+r"(value));
  return value;
}

/// A clock whose sleeps return at once and record nothing, so a retry costs only its own work.
struct NoSleepClock {
  using duration = bulwark::SteadyClock::duration;
  using time_point = bulwark::SteadyClock::time_point;
  [[nodiscard]] time_point now() const noexcept { return bulwark::SteadyClock{}.now(); }
  bool sleep_for(duration /*how_long*/, std::stop_token stop = {}) const {
    return !stop.stop_requested();
  }
};

// The first attempt succeeds: one call of the callable; no clock, random draw, throw or allocation.
// With 2 threads both share one strategy, so its counter's cache line moves between cores.
void BM_Retry_SuccessPath(benchmark::State& state) {
  static bulwark::RetryStrategy<> retry{};  // one strategy shared by the benchmark's threads
  int value = 0;
  for (auto _ : state) {
    value = retry.execute([&value] { return retry_work(value); });
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_Retry_SuccessPath)->Threads(1)->Threads(2);

// The same success path with an event listener set: events are made only after a failure, so a
// listener must cost nothing here (read against BM_Retry_SuccessPath; "events" stays 0).
void BM_Retry_SuccessPathWithListener(benchmark::State& state) {
  static std::atomic<long> seen{0};
  static bulwark::RetryStrategy<> retry{
      {.on_event = [](const bulwark::Event&) { seen.fetch_add(1, std::memory_order_relaxed); }}};
  int value = 0;
  for (auto _ : state) {
    value = retry.execute([&value] { return retry_work(value); });
    benchmark::DoNotOptimize(value);
  }
  state.counters["events"] = static_cast<double>(seen.load(std::memory_order_relaxed));
}
BENCHMARK(BM_Retry_SuccessPathWithListener)->Threads(1)->Threads(2);

// The first attempt throws, the second succeeds: the throw and catch, classification, a random
// draw, the backoff arithmetic and a sleep that returns at once.
void BM_Retry_OneRetry(benchmark::State& state) {
  bulwark::RetryStrategy<NoSleepClock> retry{};
  for (auto _ : state) {
    int attempt = 0;
    int value = retry.execute([&attempt] {
      if (++attempt == 1) throw std::runtime_error("read ECONNRESET");
      return retry_work(attempt);
    });
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_Retry_OneRetry);

// The same with a listener set: one retry_scheduled event per call, through std::function
// (read against BM_Retry_OneRetry; the difference is what reporting a retry costs).
void BM_Retry_OneRetryWithListener(benchmark::State& state) {
  long events = 0;  // what a cheap listener does: count
  bulwark::RetryStrategy<NoSleepClock> retry{
      {.on_event = [&events](const bulwark::Event&) { ++events; }}};
  for (auto _ : state) {
    int attempt = 0;
    int value = retry.execute([&attempt] {
      if (++attempt == 1) throw std::runtime_error("read ECONNRESET");
      return retry_work(attempt);
    });
    benchmark::DoNotOptimize(value);
  }
  // Events per call: 1 (one retry_scheduled each).
  state.counters["events"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_Retry_OneRetryWithListener);

}  // namespace
