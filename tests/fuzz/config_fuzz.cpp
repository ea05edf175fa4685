// libFuzzer target: random configs for every policy either construct or throw config_error,
// never crash or hang; what constructs then runs a few calls under a ManualClock.
#include <bulwark/bulwark.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>

namespace {

using bulwark::ManualClock;
using std::chrono::milliseconds;

milliseconds any_duration(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange(0, 3)) {
    case 0:
      return milliseconds{in.ConsumeIntegralInRange<std::int64_t>(-10, 10)};
    case 1:
      return milliseconds{in.ConsumeIntegralInRange<std::int64_t>(-1'000'000, 1'000'000'000)};
    case 2:
      return milliseconds::max() - milliseconds{in.ConsumeIntegral<std::uint8_t>()};
    default:
      return milliseconds{in.ConsumeIntegral<std::int64_t>()};
  }
}

std::size_t any_size(FuzzedDataProvider& in) {
  return in.ConsumeBool() ? in.ConsumeIntegralInRange<std::size_t>(0, 8)
                          : in.ConsumeIntegral<std::size_t>();
}

// Runs a few calls that succeed, fail or move the clock; every outcome must be typed.
template <class Policy>
void exercise(Policy& policy, const ManualClock& clock, FuzzedDataProvider& in) {
  for (int i = 0; i < 8 && in.remaining_bytes() > 0; ++i) {
    try {
      switch (in.ConsumeIntegralInRange(0, 2)) {
        case 0:
          policy.execute([] { return 1; });
          break;
        case 1:
          policy.execute([]() -> int { throw std::runtime_error("upstream"); });
          break;
        default:
          clock.advance(milliseconds{in.ConsumeIntegralInRange<std::int64_t>(0, 10'000'000)});
          break;
      }
    } catch (const bulwark::error&) {
    } catch (const std::runtime_error&) {
    }
    (void)policy.metrics();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in{data, size};
  const ManualClock clock;
  try {
    switch (in.ConsumeIntegralInRange(0, 4)) {
      case 0: {
        bulwark::CircuitBreaker<ManualClock> p{{.failure_threshold = any_size(in),
                                                .success_threshold = any_size(in),
                                                .open_timeout = any_duration(in),
                                                .monitoring_period = any_duration(in),
                                                .half_open_max_calls = any_size(in)},
                                               clock};
        exercise(p, clock, in);
        break;
      }
      case 1: {
        bulwark::Bulkhead<ManualClock> p{{.max_concurrent = any_size(in),
                                          .max_queue = any_size(in),
                                          .queue_timeout = any_duration(in)},
                                         clock};
        exercise(p, clock, in);
        break;
      }
      case 2: {
        bulwark::RateLimiter<ManualClock> p{{.max_requests = any_size(in),
                                             .window = any_duration(in),
                                             .burst = any_size(in),
                                             .max_wait = milliseconds{0}},
                                            clock};
        exercise(p, clock, in);
        break;
      }
      case 3: {
        bulwark::RetryStrategy<ManualClock> p{
            {.max_attempts = in.ConsumeIntegralInRange<std::size_t>(0, 6),
             .initial_delay = any_duration(in),
             .max_delay = any_duration(in),
             .backoff_multiplier = in.ConsumeFloatingPoint<double>(),
             .jitter_factor = in.ConsumeFloatingPoint<double>(),
             .backoff = static_cast<bulwark::Backoff>(in.ConsumeIntegralInRange(0, 3))},
            clock};
        exercise(p, clock, in);
        break;
      }
      default: {
        bulwark::ConnectionPool<int, ManualClock> p{[] { return 1; },
                                                    {.max_connections = any_size(in) % 64,
                                                     .idle_timeout = any_duration(in),
                                                     .max_lifetime = any_duration(in),
                                                     .acquire_timeout = any_duration(in)},
                                                    clock};
        for (int i = 0; i < 8 && in.remaining_bytes() > 0; ++i) {
          try {
            p.execute([](int& connection) { return connection; });
          } catch (const bulwark::error&) {
          }
          clock.advance(milliseconds{in.ConsumeIntegralInRange<std::int64_t>(0, 10'000'000)});
        }
        break;
      }
    }
  } catch (const bulwark::config_error&) {
  }
  return 0;
}
