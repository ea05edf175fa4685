// bulwark/detail/stripes.hpp — per-thread stripe numbers for counters written without sharing.
//
// Model: a counter that every call bumps would make every thread write one cache line, which
// costs a contended read-modify-write per call. Instead each thread takes a stripe number when
// it first counts: 0-15 from a process-wide bitmask, owned by that thread alone until it exits,
// so its counts are a plain relaxed load and store to its own padded cache line; threads beyond
// 16 get one of 4 shared stripes (16-19) and must use read-modify-write there. Readers sum every
// stripe. Cost: one thread_local read per count; taking or giving back a number is one
// compare-exchange per thread lifetime.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace bulwark::detail {

/// Hands each thread a stripe number: 0-15 owned alone while the thread lives, 16-19 shared.
class StripeRegistry {
 public:
  static constexpr std::size_t owned = 16;
  static constexpr std::size_t shared = 4;

  /// This thread's stripe number. After the thread gave its owned stripe back (at thread exit),
  /// a later use from another thread_local's destructor gets a shared stripe, never the old one.
  static std::size_t this_thread() {
    // A plain number, valid to the very end of the thread; the guard below gives it back.
    thread_local std::size_t index = unassigned;
    if (index == unassigned) [[unlikely]] {
      index = take();
      thread_local const GiveBack give_back{index};
    }
    return index;
  }

 private:
  static constexpr std::size_t unassigned = ~std::size_t{0};

  // Destroyed with the thread's other thread_locals: frees the owned stripe, and points the
  // thread at a shared one for whatever still counts after it.
  struct GiveBack {
    std::size_t& index;
    explicit GiveBack(std::size_t& taken) noexcept : index(taken) {}
    GiveBack(const GiveBack&) = delete;
    GiveBack& operator=(const GiveBack&) = delete;
    ~GiveBack() {
      if (index >= owned) return;
      // release: the next owner sees every count this thread stored.
      used().fetch_and(~(std::uint32_t{1} << index), std::memory_order_release);
      index = owned;
    }
  };

  static std::atomic<std::uint32_t>& used() {
    static std::atomic<std::uint32_t> mask{0};  // trivially destructible: safe at exit
    return mask;
  }
  static std::size_t take() {
    static std::atomic<std::uint32_t> overflow{0};
    auto& mask = used();
    std::uint32_t seen = mask.load(std::memory_order_relaxed);
    while (seen != 0xFFFFu) {
      const auto free = static_cast<std::size_t>(std::countr_one(seen));
      // acquire: see every count the stripe's previous owner stored.
      if (mask.compare_exchange_weak(seen, seen | (std::uint32_t{1} << free),
                                     std::memory_order_acquire, std::memory_order_relaxed)) {
        return free;
      }
    }
    return owned + overflow.fetch_add(1, std::memory_order_relaxed) % shared;
  }
};

}  // namespace bulwark::detail
