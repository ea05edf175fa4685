// libFuzzer target: bulwark::http::parse_retry_after on arbitrary header values. It must never
// crash, hang or throw, and its answer must be a wait between zero and what the value can mean.
#include <bulwark/http.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view value{reinterpret_cast<const char*>(data), size};
  // A fixed "now" (2026-11-24T00:00:00Z) keeps runs reproducible.
  const std::chrono::system_clock::time_point now{std::chrono::seconds{1'795'478'400}};
  const std::chrono::milliseconds wait = bulwark::http::parse_retry_after(value, now);
  if (wait.count() < 0) std::abort();  // a wait is never negative
  return 0;
}
