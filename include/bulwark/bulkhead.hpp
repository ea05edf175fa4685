// bulwark/bulkhead.hpp — caps how many calls run at once; the rest wait in a bounded FIFO queue.
//
//   bulwark::Bulkhead bulkhead{{.max_concurrent = 10, .max_queue = 20, .queue_timeout = 5s}};
//   try {
//     auto user = bulkhead.execute([&] { return fetch_user(123); });   // at most 10 at a time
//   } catch (const bulwark::bulkhead_rejected_error& e) {
//     shed_load(e.reason());   // queue_full or queue_timeout
//   }
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>

#include "clock.hpp"
#include "context.hpp"
#include "detail/validate.hpp"
#include "detail/wait.hpp"
#include "errors.hpp"
#include "events.hpp"

namespace bulwark {

/// Tuning of a Bulkhead. Defaults follow the seed's PRODUCTION_RESILIENCE_CONFIG.
struct BulkheadConfig {
  /// Calls allowed to run at once (slots). At least 1.
  std::size_t max_concurrent = 10;
  /// Calls allowed to wait for a slot; further arrivals are rejected with queue_full. 0 rejects
  /// at once whenever every slot is taken.
  std::size_t max_queue = 20;
  /// Longest a call waits in the queue before it is rejected with queue_timeout. Above 0.
  std::chrono::milliseconds queue_timeout{5'000};
  /// Receives bulkhead_queued (a call joins the queue), bulkhead_dequeued (a queued call gets a
  /// slot; delay = time queued) and bulkhead_rejected (queue_full: delay 0; queue_timeout: delay =
  /// time queued). A queued call ended by ctx.stop or ctx.deadline is not the bulkhead's rejection
  /// and reports nothing more. Empty: no events are made, and the clock is read no more often.
  EventListener on_event{};

  /// Throws config_error naming the first bad field.
  void validate() const {
    detail::require(max_concurrent >= 1, "BulkheadConfig", "max_concurrent", "must be at least 1",
                    max_concurrent);
    detail::require(queue_timeout.count() > 0, "BulkheadConfig", "queue_timeout", "must be above 0",
                    queue_timeout);
  }
};

/// A snapshot of a bulkhead; may be stale as soon as it is returned.
struct BulkheadMetrics {
  std::size_t active_count = 0;     ///< Slots taken: calls running (or just handed a slot).
  std::size_t queued_count = 0;     ///< Calls waiting in the queue for a slot.
  std::size_t available_slots = 0;  ///< Slots free: max_concurrent - active_count.
};

/// Limits concurrent calls to `max_concurrent`; up to `max_queue` more wait, first come first
/// served, for at most `queue_timeout`. Thread-safe: every member may be called concurrently.
/// When a slot is free and nobody waits, a call takes and returns its slot with one atomic
/// compare-exchange and one atomic add, without locking.
template <class Clock = SteadyClock>
class Bulkhead {
 public:
  /// Validates `config` (config_error) and starts with every slot free.
  explicit Bulkhead(BulkheadConfig config = {}, Clock clock = {})
      : config_((config.validate(), std::move(config))),
        clock_(std::move(clock)),
        state_(std::make_unique<State>(config_.max_concurrent)) {}

  /// Runs `f` (as f(ctx) or f()) in a slot, waiting in the queue if none is free; the slot is
  /// released on every path out of `f`. Throws bulkhead_rejected_error (queue_full, queue_timeout),
  /// cancelled_error (ctx.stop fired while waiting) or deadline_exceeded_error (ctx.deadline passed
  /// while waiting); passes f's result or exception through unchanged. ctx.stop and ctx.deadline
  /// bound only the wait: a call that finds a slot free runs without looking at them.
  template <class F>
  decltype(auto) execute(const Context& ctx, F&& f) {
    acquire(ctx);
    const Slot slot{*state_};
    return detail::call_with_context(f, ctx);
  }

  /// Same as execute(Context{}, f).
  template <class F>
  decltype(auto) execute(F&& f) {
    return execute(Context{}, std::forward<F>(f));
  }

  /// Counts of running and waiting calls. Lock-free; the three fields may be momentarily
  /// inconsistent with each other while calls come and go.
  [[nodiscard]] BulkheadMetrics metrics() const noexcept {
    // relaxed: a snapshot for monitoring; it orders nothing.
    const std::size_t free = state_->free_slots.load(std::memory_order_relaxed);
    return BulkheadMetrics{.active_count = config_.max_concurrent - free,
                           .queued_count = state_->queued.load(std::memory_order_relaxed),
                           .available_slots = free};
  }

  /// The validated config.
  [[nodiscard]] const BulkheadConfig& config() const noexcept { return config_; }

 private:
  // A call's way through the bulkhead:
  //
  //   arrive -- nobody waiting and a slot free: CAS free_slots down ---------------> run (fast path)
  //   arrive -- otherwise, under the mutex: announce in `waiting`, hand free slots
  //             to the queue's head first, then
  //               queue empty and a slot free -------------------------------------> run
  //               queue holds max_queue waiters --------------------> queue_full rejection
  //               ctx.stop fired / ctx.deadline passed ----> cancelled / deadline_exceeded
  //               else: enqueue a Waiter node (on the caller's stack) at the tail --> queued
  //   queued -- a releaser pops it, takes a slot for it, sets `granted` ------------> run
  //   queued -- queue_timeout / ctx.stop / ctx.deadline before `granted` --> unlinked, rejected
  //   run    -- any exit from f (Slot's destructor): free_slots += 1; if anyone is waiting,
  //             lock the mutex and hand free slots to the head waiters in order
  //
  // Events (only with a listener set) are made after the mutex is released: bulkhead_queued
  // between linking the node and waiting (the mutex is dropped and retaken around it; a grant
  // made meanwhile is seen by the wait's first check of `granted`), bulkhead_dequeued and
  // bulkhead_rejected once the slow path has left the mutex. The fast path makes none.
  //
  // A waiter leaves the queue exactly once: granting and unlinking both happen under the mutex,
  // and a waiter whose wait ends checks `granted` under the same mutex before unlinking itself.
  // A new arrival cannot overtake a waiter: the fast path is only taken when `waiting` is 0, and
  // the slow path hands free slots to queued heads before considering its own caller.
  // No waiter is stranded while a slot is free: an arrival does `waiting += 1` then reads
  // free_slots; a releaser does `free_slots += 1` then reads `waiting`. Both are seq_cst, so
  // (as in Dekker's algorithm) at least one sees the other: the arrival takes the slot, or the
  // releaser locks the mutex — after the arrival finished enqueuing — and grants it.

  struct Waiter {
    Waiter* prev = nullptr;
    Waiter* next = nullptr;
    bool granted = false;              // set under the mutex by the releaser that pops it
    std::condition_variable_any wake;  // one per waiter: a grant wakes exactly its owner
  };

  struct State {
    explicit State(std::size_t slots) : free_slots(slots) {}
    // Slots neither running nor granted to a waiter.
    std::atomic<std::size_t> free_slots;
    // Callers inside the slow path: queued, or deciding under the mutex whether to queue.
    std::atomic<std::size_t> waiting{0};
    // Nodes in the queue; written under the mutex, read by metrics() without it.
    std::atomic<std::size_t> queued{0};
    // Guards the queue: head, tail, and every queued node's links and `granted`.
    std::mutex mutex;
    Waiter* head = nullptr;
    Waiter* tail = nullptr;
  };

  // Owns one slot; returns it when the call leaves f, however it leaves.
  class Slot {
   public:
    explicit Slot(State& state) noexcept : state_(state) {}
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { release(state_); }

   private:
    State& state_;
  };

  // Keeps `waiting` accurate on every way out of the slow path, exceptions included.
  class Arrival {
   public:
    explicit Arrival(State& state) noexcept : state_(state) {
      // seq_cst: the arrival's half of the Dekker pair with release() (see above).
      state_.waiting.fetch_add(1, std::memory_order_seq_cst);
    }
    Arrival(const Arrival&) = delete;
    Arrival& operator=(const Arrival&) = delete;
    // relaxed: leaving needs no ordering; a stale nonzero only sends someone down the slow path.
    ~Arrival() { state_.waiting.fetch_sub(1, std::memory_order_relaxed); }

   private:
    State& state_;
  };

  // Takes a slot for the caller or throws; on return the caller owns one slot.
  void acquire(const Context& ctx) {
    // relaxed: only keeps arrivals behind waiters already queued; one that enqueues at this very
    // moment is not "already waiting", and the slow path is correct whatever this reads.
    if (state_->waiting.load(std::memory_order_relaxed) == 0 && try_take_free(*state_)) return;
    acquire_slow(ctx);
  }

  // Decrements free_slots if it is above zero.
  static bool try_take_free(State& state) noexcept {
    // seq_cst load: in the slow path this is the arrival's read of the Dekker pair.
    std::size_t free = state.free_slots.load(std::memory_order_seq_cst);
    while (free != 0) {
      // seq_cst on failure: the reload is again the Dekker read; on success it also acquires
      // what the previous holder of the slot published.
      if (state.free_slots.compare_exchange_weak(free, free - 1, std::memory_order_seq_cst)) {
        return true;
      }
    }
    return false;
  }

  void acquire_slow(const Context& ctx) {
    State& state = *state_;
    std::unique_lock lock{state.mutex};
    const Arrival arrival{state};
    grant_free_slots_locked(state);  // those already queued come first
    if (state.head == nullptr && try_take_free(state)) return;
    if (state.queued.load(std::memory_order_relaxed) >= config_.max_queue) {
      lock.unlock();
      detail::emit(config_.on_event, {.type = EventType::bulkhead_rejected});
      throw bulkhead_rejected_error(BulkheadRejection::queue_full);
    }
    if (ctx.stop.stop_requested()) throw cancelled_error();
    const auto queued_at = clock_.now();
    if (ctx.deadline && queued_at >= *ctx.deadline) throw deadline_exceeded_error();
    const auto own_limit = queue_limit(queued_at);
    const bool granted = wait_in_queue_locked(lock, ctx, own_limit);
    lock.unlock();
    if (granted) {
      if (config_.on_event) {  // the clock is read for the event only
        detail::emit(config_.on_event, {.type = EventType::bulkhead_dequeued,
                                        .delay = waited(queued_at, clock_.now())});
      }
      return;
    }
    const auto now = clock_.now();
    detail::throw_if_cancelled_or_past_deadline(ctx, own_limit, now);
    detail::emit(config_.on_event,
                 {.type = EventType::bulkhead_rejected, .delay = waited(queued_at, now)});
    throw bulkhead_rejected_error(BulkheadRejection::queue_timeout);
  }

  // An event's delay: the time from `from` to `to`.
  static std::chrono::nanoseconds waited(typename Clock::time_point from,
                                         typename Clock::time_point to) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(to - from);
  }

  // now + queue_timeout, saturating: a huge queue_timeout means "wait for a slot", not overflow.
  typename Clock::time_point queue_limit(typename Clock::time_point now) const noexcept {
    using time_point = typename Clock::time_point;
    const auto headroom =
        std::chrono::duration_cast<std::chrono::milliseconds>(time_point::max() - now);
    if (config_.queue_timeout >= headroom) return time_point::max();
    return now + std::chrono::duration_cast<typename Clock::duration>(config_.queue_timeout);
  }

  // Queues the caller until a grant (true: it owns a slot) or the end of its wait (false). On
  // return, or an exception, it is out of the queue and `lock` is held.
  bool wait_in_queue_locked(std::unique_lock<std::mutex>& lock, const Context& ctx,
                            typename Clock::time_point own_limit) {
    State& state = *state_;
    Waiter self;
    push_back_locked(state, self);
    // Unlinks `self` on every way out (exceptions from the wait included) unless a grant did.
    struct Unlink {
      State& state;
      Waiter& self;
      ~Unlink() {
        if (!self.granted) unlink_locked(state, self);
      }
    } unlink{state, self};
    if (config_.on_event) {  // outside the mutex; `self` stays linked, and a grant is not lost
      lock.unlock();
      detail::emit(config_.on_event, {.type = EventType::bulkhead_queued});
      lock.lock();
    }
    return detail::wait_until(clock_, self.wake, lock, ctx.stop,
                              detail::wait_deadline(own_limit, ctx),
                              [&self] { return self.granted; });
  }

  // Returns one slot; hands it (and any other free slot) to queued waiters, oldest first.
  static void release(State& state) noexcept {
    // seq_cst: the releaser's half of the Dekker pair with Arrival (see above); the release half
    // also publishes the finished call to whoever takes the slot next.
    state.free_slots.fetch_add(1, std::memory_order_seq_cst);
    if (state.waiting.load(std::memory_order_seq_cst) == 0) return;
    const std::scoped_lock lock{state.mutex};
    grant_free_slots_locked(state);
  }

  // While someone is queued and a slot is free: take the slot for the head and wake it.
  static void grant_free_slots_locked(State& state) noexcept {
    while (state.head != nullptr && try_take_free(state)) {
      Waiter& first = *state.head;
      unlink_locked(state, first);
      first.granted = true;
      first.wake.notify_one();  // under the mutex: `first` cannot return and vanish before this
    }
  }

  static void push_back_locked(State& state, Waiter& waiter) noexcept {
    waiter.prev = state.tail;
    waiter.next = nullptr;
    (state.tail != nullptr ? state.tail->next : state.head) = &waiter;
    state.tail = &waiter;
    // relaxed: written under the mutex, read only by metrics() and under the mutex.
    state.queued.store(state.queued.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  static void unlink_locked(State& state, Waiter& waiter) noexcept {
    (waiter.prev != nullptr ? waiter.prev->next : state.head) = waiter.next;
    (waiter.next != nullptr ? waiter.next->prev : state.tail) = waiter.prev;
    waiter.prev = waiter.next = nullptr;
    // relaxed: as in push_back_locked.
    state.queued.store(state.queued.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }

  BulkheadConfig config_;
  Clock clock_;
  std::unique_ptr<State> state_;
};

}  // namespace bulwark
