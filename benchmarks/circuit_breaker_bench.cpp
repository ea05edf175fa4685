// Benchmarks for bulwark/circuit_breaker.hpp: the closed breaker's success path, which takes no
// lock and writes only the calling thread's own stripe. Compare with BM_Baseline_MutexPair.
#include <bulwark/circuit_breaker.hpp>

#include <benchmark/benchmark.h>

#include <atomic>

namespace {

// One breaker shared by every benchmark thread, as a service shares one per upstream.
bulwark::CircuitBreaker<>& shared_breaker() {
  static bulwark::CircuitBreaker<> breaker;
  return breaker;
}

void BM_CircuitBreaker_ClosedSuccess(benchmark::State& state) {
  auto& breaker = shared_breaker();
  int value = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(breaker.execute([&] { return ++value; }));
  }
}
BENCHMARK(BM_CircuitBreaker_ClosedSuccess)->Threads(1)->Threads(2);

// The same path with a ManualClock, whose now() is a plain atomic load: the cost of the
// breaker's own bookkeeping without the coarse clock read.
void BM_CircuitBreaker_ClosedSuccessManualClock(benchmark::State& state) {
  static bulwark::CircuitBreaker<bulwark::ManualClock> breaker{{}, bulwark::ManualClock{}};
  int value = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(breaker.execute([&] { return ++value; }));
  }
}
BENCHMARK(BM_CircuitBreaker_ClosedSuccessManualClock)->Threads(1)->Threads(2);

// The same success path with an event listener set: events are made only on transitions and
// rejections, so a listener must cost nothing here.
void BM_CircuitBreaker_ClosedSuccessWithListener(benchmark::State& state) {
  static std::atomic<long> seen{0};
  static bulwark::CircuitBreaker<> breaker{
      {.on_event = [](const bulwark::Event&) { seen.fetch_add(1, std::memory_order_relaxed); }}};
  int value = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(breaker.execute([&] { return ++value; }));
  }
}
BENCHMARK(BM_CircuitBreaker_ClosedSuccessWithListener)->Threads(1)->Threads(2);

// The open breaker's rejection path (throws circuit_open_error): what fail-fast costs.
void BM_CircuitBreaker_OpenRejection(benchmark::State& state) {
  bulwark::CircuitBreaker<> breaker;
  breaker.isolate();
  for (auto _ : state) {
    try {
      breaker.execute([] { return 1; });
    } catch (const bulwark::circuit_open_error& e) {
      benchmark::DoNotOptimize(&e);
    }
  }
}
BENCHMARK(BM_CircuitBreaker_OpenRejection);

}  // namespace
