// Benchmarks of bulwark/bulkhead.hpp. Read them against BM_Baseline_MutexPair (benchmarks/main.cpp):
// the success path with a free slot should cost no more than one uncontended mutex lock/unlock.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>

#include <bulwark/bulkhead.hpp>

namespace {

// Slots are always free (far more than threads): the lock-free success path, one slot taken and
// returned per call. With 2 threads both share one bulkhead, so its counter's cache line is shared.
void BM_Bulkhead_UncontendedSuccess(benchmark::State& state) {
  static bulwark::Bulkhead<> bulkhead{{.max_concurrent = 1024, .max_queue = 0}};
  int calls = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(bulkhead.execute([&calls] { return ++calls; }));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Bulkhead_UncontendedSuccess)->Threads(1)->Threads(2);

// The same success path with an event listener set: only queueing and rejections make events,
// so a listener must cost nothing here (read against BM_Bulkhead_UncontendedSuccess).
void BM_Bulkhead_UncontendedSuccessWithListener(benchmark::State& state) {
  static std::atomic<long> seen{0};
  static bulwark::Bulkhead<> bulkhead{
      {.max_concurrent = 1024, .max_queue = 0, .on_event = [](const bulwark::Event&) {
         seen.fetch_add(1, std::memory_order_relaxed);
       }}};
  int calls = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(bulkhead.execute([&calls] { return ++calls; }));
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["events"] = static_cast<double>(seen.load(std::memory_order_relaxed));
}
BENCHMARK(BM_Bulkhead_UncontendedSuccessWithListener)->Threads(1)->Threads(2);

// One slot for two threads: a call that finds it taken queues and is handed the slot by the other
// thread's release (mutex, FIFO queue, condition variable). Shows the slow path under contention;
// how often it is taken depends on how much the two threads really overlap.
void BM_Bulkhead_OneSlotHandoff(benchmark::State& state) {
  // A queue_timeout no run can reach: a rejection would end the benchmark binary.
  static bulwark::Bulkhead<> bulkhead{
      {.max_concurrent = 1, .max_queue = 16, .queue_timeout = std::chrono::hours(1)}};
  int calls = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(bulkhead.execute([&calls] { return ++calls; }));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Bulkhead_OneSlotHandoff)->Threads(2)->UseRealTime();

}  // namespace
