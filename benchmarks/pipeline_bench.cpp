// Benchmarks of a whole bulwark::Pipeline: the seed's stack (rate limiter, bulkhead, breaker,
// retry) around a no-op, the figure to set beside the seed's own stack on Node
// (../shared/peers: overhead/seed-stack).
#include <bulwark/bulwark.hpp>

#include <benchmark/benchmark.h>

#include <chrono>

namespace {

[[gnu::noinline]] int pipeline_work(int value) {
  asm volatile("" : "+r"(value));
  return value;
}

// The seed's PRODUCTION_RESILIENCE_CONFIG, but with a bucket deep enough that a benchmark never
// empties it (the seed's burst of 60 would reject from the 61st call on).
auto& seed_stack() {
  using namespace std::chrono_literals;
  static bulwark::Pipeline pipeline{
      bulwark::RateLimiter{{.max_requests = 50, .window = 60s, .burst = 500'000'000}},
      bulwark::Bulkhead{{.max_concurrent = 10, .max_queue = 20, .queue_timeout = 5s}},
      bulwark::CircuitBreaker{{.failure_threshold = 5,
                               .success_threshold = 2,
                               .open_timeout = 60s,
                               .monitoring_period = 120s}},
      bulwark::RetryStrategy{{.max_attempts = 3, .initial_delay = 100ms, .max_delay = 5s}},
  };
  return pipeline;
}

void BM_Pipeline_SeedStack(benchmark::State& state) {
  auto& pipeline = seed_stack();
  int value = 0;
  for (auto _ : state) {
    value = pipeline.execute([&value] { return pipeline_work(value); });
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_Pipeline_SeedStack)->Threads(1)->Threads(2);

}  // namespace
