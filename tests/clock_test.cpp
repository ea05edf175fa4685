// Tests for the ground floor: bulwark/clock.hpp, context.hpp, errors.hpp.
#include <bulwark/clock.hpp>
#include <bulwark/context.hpp>
#include <bulwark/detail/validate.hpp>
#include <bulwark/detail/wait.hpp>
#include <bulwark/errors.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using bulwark::ManualClock;

TEST_CASE("copies of a ManualClock share one virtual time", "[clock]") {
  const ManualClock clock;
  const ManualClock copy = clock;  // NOLINT(performance-unnecessary-copy-initialization): the point
  const auto start = clock.now();
  copy.advance(5s);
  CHECK(clock.now() - start == 5s);
  CHECK(ManualClock{}.now() == start);  // a new clock starts at the same fixed point
}

TEST_CASE("ManualClock::sleep_for records the sleep and advances time at once", "[clock]") {
  const ManualClock clock;
  const auto start = clock.now();
  CHECK(clock.sleep_for(100ms));
  CHECK(clock.sleep_for(250ms));
  CHECK(clock.now() - start == 350ms);
  CHECK(clock.sleeps() == std::vector<ManualClock::duration>{100ms, 250ms});
}

TEST_CASE("ManualClock::sleep_for with a fired stop token returns false and does not sleep",
          "[clock]") {
  const ManualClock clock;
  std::stop_source stop;
  stop.request_stop();
  const auto start = clock.now();
  CHECK_FALSE(clock.sleep_for(1s, stop.get_token()));
  CHECK(clock.now() == start);
}

TEST_CASE("advance wakes a waiter whose deadline passed", "[clock][threads]") {
  const ManualClock clock;
  std::mutex mutex;
  std::condition_variable_any cv;
  std::atomic<int> woke{0};
  const auto deadline = clock.now() + 10s;
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&] {
      std::unique_lock lock{mutex};
      const bool ready =
          bulwark::detail::wait_until(clock, cv, lock, {}, deadline, [] { return false; });
      CHECK_FALSE(ready);
      CHECK(clock.now() >= deadline);
      ++woke;
    });
  }
  clock.advance(9s);
  CHECK(woke == 0);  // (they cannot have woken: the deadline is still ahead)
  clock.advance(1s);
  for (auto& waiter : waiters) waiter.join();
  CHECK(woke == 4);
}

TEST_CASE("a waiter wakes when its condition holds, before its deadline", "[clock][threads]") {
  const ManualClock clock;
  std::mutex mutex;
  std::condition_variable_any cv;
  bool ready = false;
  std::thread waiter([&] {
    std::unique_lock lock{mutex};
    CHECK(
        bulwark::detail::wait_until(clock, cv, lock, {}, clock.now() + 1h, [&] { return ready; }));
  });
  {
    std::scoped_lock lock{mutex};
    ready = true;
  }
  cv.notify_all();
  waiter.join();
}

TEST_CASE("a waiter wakes when its stop token fires", "[clock][threads]") {
  const ManualClock clock;
  std::mutex mutex;
  std::condition_variable_any cv;
  std::stop_source stop;
  std::thread waiter([&] {
    std::unique_lock lock{mutex};
    CHECK_FALSE(bulwark::detail::wait_until(clock, cv, lock, stop.get_token(), clock.now() + 1h,
                                            [] { return false; }));
  });
  stop.request_stop();
  waiter.join();
}

TEST_CASE("SteadyClock::sleep_for ends early when stopped", "[clock][threads]") {
  const bulwark::SteadyClock clock;
  std::stop_source stop;
  const auto start = clock.now();
  std::thread stopper([&] {
    std::this_thread::sleep_for(5ms);
    stop.request_stop();
  });
  CHECK_FALSE(clock.sleep_for(10s, stop.get_token()));
  stopper.join();
  CHECK(clock.now() - start < 5s);
  CHECK(clock.sleep_for(1ms));
}

TEST_CASE("a Context defaults to no stop, no deadline, idempotent", "[context]") {
  const bulwark::Context ctx;
  CHECK_FALSE(ctx.stop.stop_possible());
  CHECK_FALSE(ctx.deadline.has_value());
  CHECK(ctx.idempotent);
}

TEST_CASE("rejections carry their data and derive from bulwark::error", "[errors]") {
  const bulwark::circuit_open_error open{1500ms};
  CHECK(open.retry_after() == 1500ms);
  const bulwark::retry_hint& hint = open;
  CHECK(hint.retry_after() == 1500ms);
  const bulwark::rate_limited_error limited{20ms};
  CHECK(limited.retry_after() == 20ms);
  CHECK(std::string(limited.what()).find("20ms") != std::string::npos);
  const bulwark::bulkhead_rejected_error full{bulwark::BulkheadRejection::queue_full};
  CHECK(full.reason() == bulwark::BulkheadRejection::queue_full);
  CHECK(std::string(full.what()) == "bulwark: bulkhead queue is full");
  const bulwark::bulkhead_rejected_error late{bulwark::BulkheadRejection::queue_timeout};
  CHECK(std::string(late.what()) == "bulwark: bulkhead queue timeout");
  CHECK_THROWS_AS(throw bulwark::cancelled_error(), bulwark::error);
  CHECK_THROWS_AS(throw bulwark::deadline_exceeded_error(), bulwark::error);
  CHECK_THROWS_AS(throw bulwark::pool_exhausted_error(), bulwark::error);
  CHECK_THROWS_AS(throw bulwark::config_error("x"), std::invalid_argument);
}

TEST_CASE("config errors name the type, field, rule and value", "[errors]") {
  using Catch::Matchers::Equals;
  CHECK_THROWS_WITH(
      bulwark::detail::require(false, "RetryConfig", "jitter_factor", "must be in [0, 1]", 1.5),
      Equals("RetryConfig.jitter_factor must be in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(
      bulwark::detail::require(false, "BulkheadConfig", "queue_timeout", "must be above 0", 0ms),
      Equals("BulkheadConfig.queue_timeout must be above 0, got 0ms"));
  CHECK_NOTHROW(bulwark::detail::require(true, "X", "y", "z", 0));
}

namespace {
struct Reply {
  int status;
};
}  // namespace
template <>
struct bulwark::failure_traits<Reply> {
  static bool is_failure(const Reply& r) { return r.status >= 500; }
};

TEST_CASE("failure_traits is false by default and specialisable", "[errors]") {
  CHECK_FALSE(bulwark::failure_traits<int>::is_failure(-1));
  CHECK(bulwark::failure_traits<Reply>::is_failure(Reply{503}));
  CHECK_FALSE(bulwark::failure_traits<Reply>::is_failure(Reply{200}));
}
