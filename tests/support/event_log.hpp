// tests/support/event_log.hpp — collects what a policy's on_event listener reports, from any
// thread, as (type, delay in ms) pairs in order.
#pragma once

#include <bulwark/events.hpp>

#include <chrono>
#include <cstddef>
#include <mutex>
#include <vector>

namespace bulwark::test {

/// What a listener saw: the type and delay of one event.
struct Seen {
  bulwark::EventType type;
  std::chrono::milliseconds delay;
  bool operator==(const Seen&) const = default;
};

/// Collects events from every thread. Declare it before the policy that reports to it.
class EventLog {
 public:
  /// A listener appending to this log.
  bulwark::EventListener listener() {
    return [this](const bulwark::Event& e) {
      const std::scoped_lock lock{mutex_};
      seen_.push_back({e.type, std::chrono::duration_cast<std::chrono::milliseconds>(e.delay)});
    };
  }
  /// Everything seen so far, in order.
  [[nodiscard]] std::vector<Seen> seen() const {
    const std::scoped_lock lock{mutex_};
    return seen_;
  }
  /// How many events were seen.
  [[nodiscard]] std::size_t size() const { return seen().size(); }

 private:
  mutable std::mutex mutex_;
  std::vector<Seen> seen_;
};

}  // namespace bulwark::test
