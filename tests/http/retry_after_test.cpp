// Retry-After parsing: delay-seconds and the three HTTP-date forms, relative to a given now.
#include <catch2/catch.hpp>

#include <chrono>

#include <bulwark/http.hpp>

namespace {

using namespace std::chrono_literals;
using bulwark::http::parse_retry_after;

// 1994-11-06 08:49:37 UTC, the RFC's example date.
const std::chrono::system_clock::time_point rfc_example =
    std::chrono::sys_days{std::chrono::year{1994} / 11 / 6} + 8h + 49min + 37s;

}  // namespace

TEST_CASE("Retry-After in delay-seconds is a wait in seconds", "[http]") {
  CHECK(parse_retry_after("120", rfc_example) == 120s);
  CHECK(parse_retry_after("0", rfc_example) == 0ms);
  CHECK(parse_retry_after(" 3\t", rfc_example) == 3s);
  CHECK(parse_retry_after("99999999999999999999", rfc_example) ==
        std::chrono::hours(24 * 366 * 10));
}

TEST_CASE("Retry-After as an HTTP-date is the time left until it", "[http]") {
  const auto now = rfc_example - 30s;
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now) == 30s);   // IMF-fixdate
  CHECK(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now) == 30s);  // RFC 850
  CHECK(parse_retry_after("Sun Nov  6 08:49:37 1994", now) == 30s);        // asctime
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now + 500ms) == 29500ms);
  CHECK(parse_retry_after("Thu, 01 Jan 2037 00:00:00 GMT",
                          std::chrono::sys_days{std::chrono::year{2036} / 12 / 31}) == 24h);
}

TEST_CASE("Retry-After in the past, malformed or absent means no wait", "[http]") {
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", rfc_example) == 0ms);
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", rfc_example + 1h) == 0ms);
  for (const char* garbage : {"", "soon", "1.5", "-5", "+5", "5s", "Sun, 06 Nov 1994 08:49:37",
                              "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
                              "Sun, 06 Nov 1994 25:49:37 GMT", "Sun 06 Nov 1994"}) {
    INFO(garbage);
    CHECK(parse_retry_after(garbage, rfc_example - 1h) == 0ms);
  }
}

TEST_CASE("http_error takes retry_after from the response's Retry-After", "[http]") {
  bulwark::http::Response response{
      .status = 503, .headers = {{"retry-after", "7"}}, .body = "busy"};
  const bulwark::http::http_error error{"bulwark::http: GET /x answered HTTP 503", response};
  CHECK(error.status() == 503);
  CHECK(error.retry_after() == 7s);
  CHECK(error.response().body == "busy");
  const bulwark::retry_hint& hint = error;
  CHECK(hint.retry_after() == 7s);
  const bulwark::http::http_error copy = error;  // copies share the response
  CHECK(&copy.response() == &error.response());
  CHECK(bulwark::http::http_error{"x", {.status = 500}}.retry_after() == 0ms);
}
