// Benchmarks for bulwark/connection_pool.hpp: lending an idle connection and taking it back, the
// path every pooled call takes once the pool is warm. Each operation locks the pool's mutex twice
// and reads the clock twice; it never allocates. Compare with BM_Baseline_MutexPair.
#include <bulwark/connection_pool.hpp>

#include <atomic>

#include <benchmark/benchmark.h>

namespace {

// A connection that costs nothing to open or close: only the pool's own work is measured.
struct TrivialConnection {
  int fd = 3;
};

// One pool shared by every benchmark thread, with more connections than threads: nobody waits.
template <class Clock>
bulwark::ConnectionPool<TrivialConnection, Clock>& shared_pool() {
  static bulwark::ConnectionPool<TrivialConnection, Clock> pool{
      [] { return TrivialConnection{}; }, {.max_connections = 4}, Clock{}};
  return pool;
}

void BM_ConnectionPool_AcquireRelease(benchmark::State& state) {
  auto& pool = shared_pool<bulwark::SteadyClock>();
  for (auto _ : state) {
    auto lease = pool.acquire();
    benchmark::DoNotOptimize(lease->fd);
  }
}
BENCHMARK(BM_ConnectionPool_AcquireRelease)->Threads(1)->Threads(2);

// The same with an event listener set: only a caller that had to wait makes events, so a
// listener must cost nothing here (read against BM_ConnectionPool_AcquireRelease).
void BM_ConnectionPool_AcquireReleaseWithListener(benchmark::State& state) {
  static std::atomic<long> seen{0};
  static bulwark::ConnectionPool<TrivialConnection> pool{
      [] { return TrivialConnection{}; },
      {.max_connections = 4,
       .on_event = [](const bulwark::Event&) { seen.fetch_add(1, std::memory_order_relaxed); }}};
  for (auto _ : state) {
    auto lease = pool.acquire();
    benchmark::DoNotOptimize(lease->fd);
  }
  state.counters["events"] = static_cast<double>(seen.load(std::memory_order_relaxed));
}
BENCHMARK(BM_ConnectionPool_AcquireReleaseWithListener)->Threads(1)->Threads(2);

// The same with a ManualClock, whose now() is a plain atomic load: the pool's bookkeeping without
// the two steady_clock reads.
void BM_ConnectionPool_AcquireReleaseManualClock(benchmark::State& state) {
  auto& pool = shared_pool<bulwark::ManualClock>();
  for (auto _ : state) {
    auto lease = pool.acquire();
    benchmark::DoNotOptimize(lease->fd);
  }
}
BENCHMARK(BM_ConnectionPool_AcquireReleaseManualClock)->Threads(1)->Threads(2);

}  // namespace
