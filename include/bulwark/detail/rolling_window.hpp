// bulwark/detail/rolling_window.hpp — fixed-memory rolling counts for the circuit breaker.
//
// Model: time is cut into buckets of w = 2^k clock ticks, the largest power of two not above a
// tenth of the period P, and a window is the current bucket plus the B - 1 before it, where
// B = ceil(P / w), so 10 <= B <= 20. An event therefore stops counting between (B - 1) w and
// B w after it happened: between 0.9 P and 1.1 P. Bucket numbers are ticks >> k (a shift, no
// division) and slots are bucket & 31 (no modulo). Memory is fixed whatever the event rate.
//
// FailureWindow: one ring of 32 {bucket, count} slots and a running total; adding advances the
// ring, subtracting each bucket it evicts. O(1) amortised per event, ~0.5 KiB. Not thread-safe:
// the breaker guards it with its mutex.
//
// SuccessWindow: the same buckets, but lock-free and written without sharing: every thread owns
// one of 16 padded stripes (see stripes.hpp) and records with a relaxed load and store, so two
// threads never write the same cache line. Threads beyond 16 share 4 extra stripes through
// compare-exchange. A stripe is 32 packed {bucket:32, count:32} words plus a running total;
// 20 stripes take 6.4 KiB. Reading sums every stripe: O(20 * 32).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>

#include "coarse_clock.hpp"
#include "stripes.hpp"

namespace bulwark::detail {

/// Bucket geometry shared by both windows.
struct WindowShape {
  static constexpr std::size_t slots = 32;  // ring size: a power of two above the most buckets (20)
  unsigned shift = 0;                       // bucket = ticks >> shift
  std::uint64_t buckets = 10;               // B: buckets in one window

  explicit WindowShape(std::chrono::nanoseconds period) {
    const auto p = static_cast<std::uint64_t>(period.count() < 20 ? 20 : period.count());
    shift = static_cast<unsigned>(std::bit_width(p / 10) - 1);
    const std::uint64_t width = std::uint64_t{1} << shift;
    buckets = (p + width - 1) / width;
  }
  [[nodiscard]] std::int64_t bucket_of(std::int64_t ticks) const noexcept { return ticks >> shift; }
  [[nodiscard]] std::chrono::nanoseconds bucket_width() const noexcept {
    return std::chrono::nanoseconds{std::int64_t{1} << shift};
  }
};

/// Failure counts over the rolling window; guarded by its owner's mutex.
class FailureWindow {
 public:
  explicit FailureWindow(WindowShape shape) : shape_(shape) {}

  /// Counts one event at `ticks` (ticks never go backwards in practice; older ones go to now).
  void add(std::int64_t ticks) {
    advance(ticks);
    ++ring_[index(newest_)].count;
    ++total_;
  }
  /// Events within the window ending at `ticks`.
  [[nodiscard]] std::uint64_t count(std::int64_t ticks) {
    advance(ticks);
    return total_;
  }
  /// Forgets every event.
  void clear() {
    ring_ = {};
    total_ = 0;
    newest_ = INT64_MIN;  // so the next add() tags its slot afresh
  }

 private:
  struct Slot {
    std::int64_t bucket = 0;
    std::uint64_t count = 0;
  };
  static std::size_t index(std::int64_t bucket) noexcept {
    return static_cast<std::size_t>(bucket) & (WindowShape::slots - 1);
  }
  void advance(std::int64_t ticks) {
    const std::int64_t now = shape_.bucket_of(ticks);
    if (now <= newest_) return;
    // Evict what falls out of [now - B + 1, now]; at most `slots` slots need looking at.
    const std::int64_t oldest_kept = now - static_cast<std::int64_t>(shape_.buckets) + 1;
    for (auto& slot : ring_) {
      if (slot.count != 0 && slot.bucket < oldest_kept) {
        total_ -= slot.count;
        slot.count = 0;
      }
    }
    ring_[index(now)].bucket = now;  // the slot was evicted above unless it already holds `now`
    newest_ = now;
  }

  WindowShape shape_;
  std::array<Slot, WindowShape::slots> ring_{};
  std::uint64_t total_ = 0;
  std::int64_t newest_ = INT64_MIN;
};

/// Success counts over the rolling window: lock-free, each thread writing its own stripe.
class SuccessWindow {
 public:
  /// `coarse`: the clock is SteadyClock, so the cheap coarse monotonic clock may stamp events
  /// when its resolution is small against a bucket.
  SuccessWindow(WindowShape shape, bool coarse)
      : shape_(shape), coarse_(coarse && coarse_fits(shape)) {}

  /// Whether record() may be given coarse_ticks() instead of the exact time.
  [[nodiscard]] bool coarse_ok() const noexcept { return coarse_; }

  /// Counts one event at `ticks` in the calling thread's stripe.
  void record(std::int64_t ticks) noexcept {
    const std::size_t index = StripeRegistry::this_thread();
    Stripe& stripe = stripes_[index];
    const std::int64_t bucket = shape_.bucket_of(ticks);
    std::atomic<std::uint64_t>& cell =
        stripe.cells[static_cast<std::size_t>(bucket) & (WindowShape::slots - 1)];
    const auto tag = static_cast<std::uint32_t>(bucket);
    // relaxed everywhere: counts are statistics; readers need no ordering with other memory.
    if (index < StripeRegistry::owned) {  // this thread alone writes here: load + store
      const std::uint64_t seen = cell.load(std::memory_order_relaxed);
      cell.store(next(seen, tag), std::memory_order_relaxed);
      stripe.total.store(stripe.total.load(std::memory_order_relaxed) + 1,
                         std::memory_order_relaxed);
    } else {
      std::uint64_t seen = cell.load(std::memory_order_relaxed);
      while (!cell.compare_exchange_weak(seen, next(seen, tag), std::memory_order_relaxed)) {
      }
      stripe.total.fetch_add(1, std::memory_order_relaxed);
    }
  }

  /// Events within the window ending at `ticks`, less those forgotten by forget().
  [[nodiscard]] std::uint64_t count(std::int64_t ticks) const noexcept {
    const auto now = static_cast<std::uint32_t>(shape_.bucket_of(ticks));
    const auto sums = bucket_sums();
    std::uint64_t sum = 0;
    for (std::size_t slot = 0; slot < WindowShape::slots; ++slot) {
      const auto age = static_cast<std::uint32_t>(now - sums[slot].tag);
      if (age >= shape_.buckets) continue;
      const Sum& gone = forgotten_[slot];
      sum += sums[slot].count -
             (gone.tag == sums[slot].tag ? std::min(gone.count, sums[slot].count) : 0);
    }
    return sum;
  }

  /// Makes count() ignore every event recorded so far. Events racing with it may land on either
  /// side. Not thread-safe against itself or count(): the breaker calls both under its mutex.
  void forget() noexcept { forgotten_ = bucket_sums(); }

  /// Events ever recorded (monotonic).
  [[nodiscard]] std::uint64_t total() const noexcept {
    std::uint64_t sum = 0;
    for (const Stripe& stripe : stripes_) sum += stripe.total.load(std::memory_order_relaxed);
    return sum;
  }

  /// The coarse monotonic clock (same epoch as steady_clock), in ticks.
  [[nodiscard]] static std::int64_t coarse_ticks() noexcept { return coarse_steady_ticks(); }

 private:
  static constexpr std::uint64_t pack(std::uint32_t tag, std::uint32_t count) noexcept {
    return (std::uint64_t{tag} << 32) | count;
  }
  // The cell after one more event in bucket `tag`: a new bucket starts at 1; a full count stays
  // full (2^32 - 1) rather than carrying into the tag.
  static constexpr std::uint64_t next(std::uint64_t seen, std::uint32_t tag) noexcept {
    if (static_cast<std::uint32_t>(seen >> 32) != tag) return pack(tag, 1);
    return static_cast<std::uint32_t>(seen) == UINT32_MAX ? seen : seen + 1;
  }
  // The coarse clock may stamp events when a bucket is at least 100 of its resolutions wide.
  static bool coarse_fits(const WindowShape& shape) noexcept {
    const auto resolution = coarse_steady_resolution();
    return resolution <= shape.bucket_width() / 100;
  }

  struct Sum {
    std::uint32_t tag = 0;
    std::uint64_t count = 0;
  };
  // Per slot: the sum over stripes of cells holding the slot's newest bucket.
  [[nodiscard]] std::array<Sum, WindowShape::slots> bucket_sums() const noexcept {
    std::array<Sum, WindowShape::slots> sums{};
    std::array<bool, WindowShape::slots> seen{};
    for (const Stripe& stripe : stripes_) {
      for (std::size_t slot = 0; slot < WindowShape::slots; ++slot) {
        const std::uint64_t word = stripe.cells[slot].load(std::memory_order_relaxed);
        const auto tag = static_cast<std::uint32_t>(word >> 32);
        const std::uint64_t count = word & 0xFFFF'FFFFu;
        if (count == 0) continue;
        if (!seen[slot] || static_cast<std::int32_t>(tag - sums[slot].tag) > 0) {
          sums[slot] = {tag, count};  // a newer bucket replaces an older one in this slot
          seen[slot] = true;
        } else if (tag == sums[slot].tag) {
          sums[slot].count += count;
        }
      }
    }
    return sums;
  }

  struct alignas(64) Stripe {
    std::array<std::atomic<std::uint64_t>, WindowShape::slots> cells{};
    std::atomic<std::uint64_t> total{0};
  };

  WindowShape shape_;
  bool coarse_;
  std::array<Stripe, StripeRegistry::owned + StripeRegistry::shared> stripes_{};
  std::array<Sum, WindowShape::slots> forgotten_{};  // guarded by the owner's mutex
};

}  // namespace bulwark::detail
