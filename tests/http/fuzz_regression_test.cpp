// Inputs the fuzzers (tests/fuzz) found to break something, kept as tests once fixed.
#include <bulwark/http.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

TEST_CASE("a base URL with a bad scheme never echoes credentials written before it",
          "[http][issue-6]") {
  // fuzz_base_url: the scheme was everything before "://" and was echoed whole in the message.
  for (const std::string url : {"user:hunter22@127.0.0.1://x", "https:/ot@:https://t@:"}) {
    try {
      (void)bulwark::http::detail::parse_base_url(url);
      FAIL("parsed " << url);
    } catch (const bulwark::config_error& e) {
      const std::string what = e.what();
      CHECK(what.find("hunter22") == std::string::npos);
      CHECK(what.find('@') == std::string::npos);
      CHECK(what.find("must start with http:// or https://") != std::string::npos);
    }
  }
}

TEST_CASE("a Retry-After date past the year 2262 is capped, not overflowed", "[http][issue-6]") {
  // fuzz_retry_after: the date was converted to system_clock's nanoseconds, which overflowed.
  using namespace std::chrono_literals;
  const std::chrono::system_clock::time_point now{std::chrono::seconds{1'795'478'400}};
  const auto wait = bulwark::http::parse_retry_after("Wed, 25 Nov 9640 00:00:10 GMT", now);
  CHECK(wait == std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::seconds{10LL * 366 * 24 * 3600}));
  CHECK(bulwark::http::parse_retry_after("Wed, 25 Nov 2026 00:00:10 GMT", now) == 24h + 10s);
}
