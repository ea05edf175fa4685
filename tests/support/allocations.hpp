// tests/support/allocations.hpp — counts this thread's calls to global operator new, so a test can
// prove a path allocates nothing. The replacement operators live in allocations.cpp.
#pragma once

#include <cstddef>

namespace bulwark::test {

/// Global operator new calls made so far by the calling thread.
std::size_t allocations_on_this_thread() noexcept;

/// Counts the calling thread's allocations from construction to count().
class AllocationCounter {
 public:
  AllocationCounter() noexcept : start_(allocations_on_this_thread()) {}
  [[nodiscard]] std::size_t count() const noexcept { return allocations_on_this_thread() - start_; }

 private:
  std::size_t start_;
};

}  // namespace bulwark::test
