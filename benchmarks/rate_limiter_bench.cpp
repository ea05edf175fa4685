// Benchmarks of bulwark/rate_limiter.hpp. Read BM_RateLimiter_UncontendedSuccess against
// BM_Baseline_MutexPair and BM_Baseline_DirectCall (benchmarks/main.cpp), which do the same unit
// of work under a mutex and bare. A success costs one clock reading and one compare-exchange on
// the bucket's word: no lock, no allocation. BM_RateLimiter_SteadyClockNow measures the clock
// reading alone. BM_RateLimiter_UncontendedSuccessSeedRate is the same success at the seed's rate,
// where a token's interval (1.2 s) lets the take read the coarse clock instead (a few ns).
// BM_RateLimiter_LockedReference is a mutex-based bucket doing the same, for comparison.
#include <bulwark/rate_limiter.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>

#include <benchmark/benchmark.h>

namespace {

/// The unit of work, as in benchmarks/main.cpp: a real call the optimiser cannot remove.
[[gnu::noinline]] int limiter_work(int value) {
  asm volatile("" : "+r"(value));
  return value;
}

/// A token per nanosecond, far more than a benchmark loop can take: every call finds one. At this
/// rate a coarse clock's tick is a million tokens, so the take reads steady_clock::now().
const bulwark::RateLimiterConfig never_empty{.max_requests = 1'000'000'000,
                                             .window = std::chrono::milliseconds{1'000},
                                             .burst = 100'000'000};

// Every call finds a token. With 2 threads both share one limiter, so the bucket's cache line
// moves between cores and a compare-exchange sometimes retries; no thread ever takes the mutex.
void BM_RateLimiter_UncontendedSuccess(benchmark::State& state) {
  static bulwark::RateLimiter<> limiter{
      never_empty};  // one limiter shared by the benchmark's threads
  int value = 0;
  for (auto _ : state) {
    value = limiter.execute([&value] { return limiter_work(value); });
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_RateLimiter_UncontendedSuccess)->Threads(1)->Threads(2);

// The part of the above that is std::chrono::steady_clock::now() (clock_gettime, vDSO).
void BM_RateLimiter_SteadyClockNow(benchmark::State& state) {
  const bulwark::SteadyClock clock;
  for (auto _ : state) benchmark::DoNotOptimize(clock.now());
}
BENCHMARK(BM_RateLimiter_SteadyClockNow);

/// For comparison only: the seed's bucket as most would write it, a std::mutex around a clock
/// reading and floating-point refill (which drifts; bulwark's does not).
class LockedReferenceBucket {
 public:
  bool try_take() {
    const std::scoped_lock lock{mutex_};
    const auto now = clock_.now();
    const double elapsed_ns = std::chrono::duration<double, std::nano>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed_ns * per_ns_);
    last_ = now;
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

 private:
  std::mutex mutex_;
  bulwark::SteadyClock clock_;
  bulwark::SteadyClock::time_point last_ = clock_.now();
  double tokens_ = 100'000'000.0;
  double burst_ = 100'000'000.0;
  double per_ns_ = 1.0;
};

// The same work as BM_RateLimiter_UncontendedSuccess through LockedReferenceBucket: what the
// lock-free fast path saves (with 2 threads, both contend for its one mutex).
void BM_RateLimiter_LockedReference(benchmark::State& state) {
  static LockedReferenceBucket bucket;
  int value = 0;
  for (auto _ : state) {
    if (!bucket.try_take()) state.SkipWithError("reference bucket ran dry");
    value = limiter_work(value);
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_RateLimiter_LockedReference)->Threads(1)->Threads(2);

// The seed's rate (50 per 60 s: a token every 1.2 s) with a bucket deep enough never to run dry
// in a benchmark. A token's interval is far above the coarse clock's resolution, so the take
// reads CLOCK_MONOTONIC_COARSE (~4 ns) instead of steady_clock::now(): see RateLimiter::coarse_.
const bulwark::RateLimiterConfig seed_rate_deep_bucket{
    .max_requests = 50, .window = std::chrono::milliseconds{60'000}, .burst = 500'000'000};

void BM_RateLimiter_UncontendedSuccessSeedRate(benchmark::State& state) {
  static bulwark::RateLimiter<> limiter{seed_rate_deep_bucket};
  int value = 0;
  for (auto _ : state) {
    value = limiter.execute([&value] { return limiter_work(value); });
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_RateLimiter_UncontendedSuccessSeedRate)->Threads(1)->Threads(2);

// The same with an event listener set: a success makes no event, so it costs one branch more.
void BM_RateLimiter_UncontendedSuccessSeedRateWithListener(benchmark::State& state) {
  static std::atomic<long> events{0};
  static bulwark::RateLimiter<> limiter{[] {
    auto config = seed_rate_deep_bucket;
    config.on_event = [](const bulwark::Event&) { events.fetch_add(1, std::memory_order_relaxed); };
    return config;
  }()};
  int value = 0;
  for (auto _ : state) {
    value = limiter.execute([&value] { return limiter_work(value); });
    benchmark::DoNotOptimize(value);
  }
  state.counters["events"] = static_cast<double>(events.load());
}
BENCHMARK(BM_RateLimiter_UncontendedSuccessSeedRateWithListener)->Threads(1)->Threads(2);

}  // namespace
