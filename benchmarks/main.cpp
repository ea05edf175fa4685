// benchmarks/main.cpp — main() for bulwark_benchmarks, and the baselines every other figure is
// read against: a direct call, an uncontended mutex pair, and an empty Pipeline<>.
//
//   build/release/benchmarks/bulwark_benchmarks --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true        (one command: medians, means, deviations)
//
// main() starts and joins a thread before anything is measured: until a process has made a
// second thread, glibc and libstdc++ take single-thread shortcuts (__libc_single_threaded) that a
// real server never sees, and that would make the mutex floor look cheaper than it is.
#include <benchmark/benchmark.h>

#include <mutex>
#include <thread>

#include <bulwark/pipeline.hpp>

namespace {

/// The unit of work every baseline wraps: a real call that the optimiser cannot remove.
[[gnu::noinline]] int no_op(int value) {
  asm volatile("" : "+r"(value));  // opaque to the optimiser: the call and its result stay
  return value;
}

void BM_Baseline_DirectCall(benchmark::State& state) {
  int value = 0;
  for (auto _ : state) {
    value = no_op(value);
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_Baseline_DirectCall);

void BM_Baseline_MutexPair(benchmark::State& state) {
  std::mutex mutex;  // one per benchmark thread, so each lock is uncontended
  int value = 0;
  for (auto _ : state) {
    mutex.lock();
    value = no_op(value);
    mutex.unlock();
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_Baseline_MutexPair)->Threads(1)->Threads(2);

void BM_Baseline_EmptyPipeline(benchmark::State& state) {
  bulwark::Pipeline<> pipeline;
  int value = 0;
  for (auto _ : state) {
    value = pipeline.execute([&value] { return no_op(value); });
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_Baseline_EmptyPipeline);

}  // namespace

int main(int argc, char** argv) {
  std::thread([] {}).join();  // leave single-thread mode before anything is measured (see top)
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
