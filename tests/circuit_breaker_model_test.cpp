// A randomized model test of CircuitBreaker: random sequences of successes, failures, clock
// advances, isolate() and reset() run against the breaker and against a small reference model of
// docs/design.md's state machine. Any divergence fails with the shortest sequence found.
#include <bulwark/circuit_breaker.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using bulwark::CircuitState;
using bulwark::ManualClock;

namespace {

enum class Op { succeed, fail, advance, isolate, reset, query };

struct Step {
  Op op;
  std::chrono::milliseconds by{0};  // for advance
};

// The reference: DESIGN.md's semantics written plainly, with an unbounded list of failure times.
// The window geometry is the documented one: buckets of 2^k ns, the largest power of two not
// above a tenth of the period, B = ceil(P / width) of them; a failure counts while its bucket is
// among the newest B.
class Model {
 public:
  explicit Model(const bulwark::CircuitBreakerConfig& config, std::int64_t start_ns)
      : config_(config), now_(start_ns) {
    const auto p =
        static_cast<std::uint64_t>(std::chrono::nanoseconds(config.monitoring_period).count());
    shift_ = 0;
    while ((std::uint64_t{1} << (shift_ + 1)) <= p / 10) ++shift_;
    buckets_ = static_cast<std::int64_t>((p + (std::uint64_t{1} << shift_) - 1) >> shift_);
  }

  // Returns whether the call was rejected.
  bool call(bool fails) {
    refresh();
    if (state_ == CircuitState::open) return true;
    if (fails) {
      failures_.push_back(now_);
      ++consecutive_failures_;
      consecutive_successes_ = 0;
      if (state_ == CircuitState::half_open || failures_in_window() >= config_.failure_threshold)
        open();
    } else {
      consecutive_failures_ = 0;
      ++consecutive_successes_;
      if (state_ == CircuitState::half_open && consecutive_successes_ >= config_.success_threshold)
        close();
    }
    return false;
  }
  void advance(std::chrono::milliseconds by) { now_ += std::chrono::nanoseconds(by).count(); }
  void isolate() {
    isolated_ = true;
    open();
  }
  void reset() {
    isolated_ = false;
    close();
  }
  CircuitState state() {
    refresh();
    return state_;
  }
  std::size_t failures_in_window() const {
    std::size_t n = 0;
    for (const std::int64_t t : failures_) n += (now_ >> shift_) - (t >> shift_) < buckets_ ? 1 : 0;
    return n;
  }
  std::size_t consecutive_failures() const { return consecutive_failures_; }
  std::size_t consecutive_successes() const { return consecutive_successes_; }

 private:
  void refresh() {
    if (state_ == CircuitState::open && !isolated_ && now_ >= open_until_) {
      state_ = CircuitState::half_open;
      consecutive_successes_ = 0;
    }
  }
  void open() {
    state_ = CircuitState::open;
    open_until_ = now_ + std::chrono::nanoseconds(config_.open_timeout).count();
  }
  void close() {
    state_ = CircuitState::closed;
    failures_.clear();
    consecutive_failures_ = 0;
    consecutive_successes_ = 0;
  }

  bulwark::CircuitBreakerConfig config_;
  std::int64_t now_;
  unsigned shift_ = 0;
  std::int64_t buckets_ = 10;
  CircuitState state_ = CircuitState::closed;
  bool isolated_ = false;
  std::int64_t open_until_ = 0;
  std::vector<std::int64_t> failures_;
  std::size_t consecutive_failures_ = 0;
  std::size_t consecutive_successes_ = 0;
};

const char* name(CircuitState s) {
  switch (s) {
    case CircuitState::closed:
      return "closed";
    case CircuitState::open:
      return "open";
    case CircuitState::half_open:
      return "half_open";
  }
  return "?";
}

std::string describe(const std::vector<Step>& steps) {
  std::ostringstream out;
  for (const Step& step : steps) {
    switch (step.op) {
      case Op::succeed:
        out << "succeed ";
        break;
      case Op::fail:
        out << "fail ";
        break;
      case Op::advance:
        out << "advance(" << step.by.count() << "ms) ";
        break;
      case Op::isolate:
        out << "isolate ";
        break;
      case Op::reset:
        out << "reset ";
        break;
      case Op::query:
        out << "query ";
        break;
    }
  }
  return out.str();
}

// Runs `steps` against both; returns a description of the first divergence, if any.
std::optional<std::string> divergence(const bulwark::CircuitBreakerConfig& config,
                                      const std::vector<Step>& steps) {
  ManualClock clock;
  bulwark::CircuitBreaker<ManualClock> breaker{config, clock};
  Model model{config, std::chrono::nanoseconds(clock.now().time_since_epoch()).count()};
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Step& step = steps[i];
    std::optional<bool> real_rejected;
    std::optional<bool> model_rejected;
    switch (step.op) {
      case Op::succeed:
      case Op::fail: {
        const bool fails = step.op == Op::fail;
        try {
          breaker.execute([fails]() -> int {
            if (fails) throw std::runtime_error("down");
            return 1;
          });
          real_rejected = false;
        } catch (const bulwark::circuit_open_error&) {
          real_rejected = true;
        } catch (const std::runtime_error&) {
          real_rejected = false;
        }
        model_rejected = model.call(fails);
        break;
      }
      case Op::advance:
        clock.advance(step.by);
        model.advance(step.by);
        break;
      case Op::isolate:
        breaker.isolate();
        model.isolate();
        break;
      case Op::reset:
        breaker.reset();
        model.reset();
        break;
      case Op::query:
        break;
    }
    const auto m = breaker.metrics();
    std::ostringstream why;
    if (real_rejected != model_rejected)
      why << "rejected " << *real_rejected << " vs model " << *model_rejected;
    const CircuitState expected = model.state();
    if (m.state != expected) why << "state " << name(m.state) << " vs model " << name(expected);
    if (m.failures != model.failures_in_window())
      why << "failures " << m.failures << " vs model " << model.failures_in_window();
    if (m.consecutive_failures != model.consecutive_failures()) {
      why << "consecutive_failures " << m.consecutive_failures << " vs model "
          << model.consecutive_failures();
    }
    if (m.consecutive_successes != model.consecutive_successes()) {
      why << "consecutive_successes " << m.consecutive_successes << " vs model "
          << model.consecutive_successes();
    }
    if (!why.str().empty()) return "after step " + std::to_string(i + 1) + ": " + why.str();
  }
  return std::nullopt;
}

// Greedy shrinking: drop steps one at a time while the sequence still diverges.
std::vector<Step> shrink(const bulwark::CircuitBreakerConfig& config, std::vector<Step> steps) {
  for (bool smaller = true; smaller;) {
    smaller = false;
    for (std::size_t i = 0; i < steps.size(); ++i) {
      std::vector<Step> candidate = steps;
      candidate.erase(candidate.begin() + static_cast<std::ptrdiff_t>(i));
      if (divergence(config, candidate)) {
        steps = std::move(candidate);
        smaller = true;
        break;
      }
    }
  }
  return steps;
}

}  // namespace

TEST_CASE("the breaker follows the reference state machine on random sequences",
          "[circuit_breaker][model]") {
  std::mt19937_64 random{20261124};
  const std::vector<bulwark::CircuitBreakerConfig> configs{
      {.failure_threshold = 3,
       .success_threshold = 2,
       .open_timeout = 1'000ms,
       .monitoring_period = 5'000ms},
      {.failure_threshold = 1,
       .success_threshold = 1,
       .open_timeout = 50ms,
       .monitoring_period = 30ms},
      {.failure_threshold = 5,
       .success_threshold = 3,
       .open_timeout = 60s,
       .monitoring_period = 120s},
  };
  for (const auto& config : configs) {
    const auto period = config.monitoring_period.count();
    for (int run = 0; run < 1000; ++run) {
      std::vector<Step> steps;
      const int length = 20 + static_cast<int>(random() % 80);
      for (int i = 0; i < length; ++i) {
        const auto pick = random() % 100;
        if (pick < 35) {
          steps.push_back({Op::succeed});
        } else if (pick < 70) {
          steps.push_back({Op::fail});
        } else if (pick < 94) {
          steps.push_back(
              {Op::advance, std::chrono::milliseconds(static_cast<long>(
                                random() % static_cast<std::uint64_t>(period / 2 + 1)))});
        } else if (pick < 96) {
          steps.push_back({Op::isolate});
        } else if (pick < 98) {
          steps.push_back({Op::reset});
        } else {
          steps.push_back({Op::query});
        }
      }
      if (const auto found = divergence(config, steps)) {
        const auto shortest = shrink(config, steps);
        FAIL("divergence " << *divergence(config, shortest)
                           << "\n  shortest sequence: " << describe(shortest));
      }
    }
  }
  SUCCEED("no divergence");
}
