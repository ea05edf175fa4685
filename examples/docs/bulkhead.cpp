// docs/bulkhead.md: one slot and a queue of one. A call holds the slot, a second waits in the
// queue, a third finds the queue full; when queue_timeout passes, the waiting call is turned
// away. A ManualClock stands in for the steady clock, so the five seconds pass at once.
#include <bulwark/bulwark.hpp>

#include <atomic>
#include <chrono>
#include <iostream>
#include <latch>
#include <thread>

const char* reason_name(bulwark::BulkheadRejection reason) {
  return reason == bulwark::BulkheadRejection::queue_full ? "queue_full" : "queue_timeout";
}

void print(const bulwark::BulkheadMetrics& m) {
  std::cout << "active " << m.active_count << ", queued " << m.queued_count << ", available "
            << m.available_slots << '\n';
}

int main() {
  using namespace std::chrono_literals;
  std::atomic<int> queued{0};  // bulkhead_queued events seen
  bulwark::ManualClock clock;
  bulwark::Bulkhead<bulwark::ManualClock> bulkhead{
      {.max_concurrent = 1,
       .max_queue = 1,
       .queue_timeout = 5s,
       .on_event =
           [&](const bulwark::Event& e) {
             if (e.type == bulwark::EventType::bulkhead_queued) {
               queued.fetch_add(1);
               queued.notify_all();
             }
           }},
      clock};

  std::latch running{1}, finish{1};
  std::jthread busy{[&] {
    bulkhead.execute([&] {  // takes the only slot until `finish`
      running.count_down();
      finish.wait();
    });
  }};
  running.wait();

  bulwark::BulkheadRejection second{};
  std::jthread waiting{[&] {
    try {
      bulkhead.execute([] {});
    } catch (const bulwark::bulkhead_rejected_error& e) {
      second = e.reason();
    }
  }};
  queued.wait(0);  // the second call is in the queue
  print(bulkhead.metrics());

  try {
    bulkhead.execute([] {});
  } catch (const bulwark::bulkhead_rejected_error& e) {
    std::cout << "third call: " << reason_name(e.reason()) << '\n';
  }

  clock.advance(5s);  // queue_timeout passes for the waiting call
  waiting.join();
  std::cout << "second call: " << reason_name(second) << '\n';

  finish.count_down();
  busy.join();
  print(bulkhead.metrics());
}
