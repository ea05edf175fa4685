// bulwark.hpp is the core and nothing else: it pulls in neither cpp-httplib nor fmt, so a user who
// never touches HTTP or formatting never pays for them (STYLE.md; fmt's test/base-test.cc proves
// the same of its light header). This file includes bulwark.hpp before anything else.
#include <bulwark/bulwark.hpp>

#ifdef CPPHTTPLIB_VERSION
constexpr bool umbrella_includes_httplib = true;
#else
constexpr bool umbrella_includes_httplib = false;
#endif
#ifdef FMT_VERSION
constexpr bool umbrella_includes_fmt = true;
#else
constexpr bool umbrella_includes_fmt = false;
#endif

static_assert(!umbrella_includes_httplib, "bulwark/bulwark.hpp must not include cpp-httplib");
static_assert(!umbrella_includes_fmt, "bulwark/bulwark.hpp must not include fmt");

#include <catch2/catch.hpp>

TEST_CASE("the umbrella header includes neither cpp-httplib nor fmt", "[umbrella]") {
  CHECK_FALSE(umbrella_includes_httplib);
  CHECK_FALSE(umbrella_includes_fmt);
}

TEST_CASE("the umbrella header declares the whole core", "[umbrella]") {
  bulwark::Pipeline pipeline{bulwark::RateLimiter{}, bulwark::Bulkhead{}, bulwark::CircuitBreaker{},
                             bulwark::RetryStrategy{}};
  CHECK(pipeline.execute([] { return 42; }) == 42);
}
