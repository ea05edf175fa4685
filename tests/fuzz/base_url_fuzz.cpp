// libFuzzer target: the base URL parser behind ResilientHttpClient. Any input either parses into
// a usable origin or throws config_error, and no error message ever shows the userinfo.
#include <bulwark/http.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view url{reinterpret_cast<const char*>(data), size};
  try {
    const auto parsed = bulwark::http::detail::parse_base_url(url);
    if (parsed.host.empty() || parsed.port < 1 || parsed.port > 65535) std::abort();
    if (parsed.host.find('@') != std::string::npos) std::abort();
    // The origin is exactly scheme://host:port, so it can never carry the userinfo.
    const bool ipv6 = parsed.host.find(':') != std::string::npos;
    const std::string expected = std::string(parsed.tls ? "https" : "http") + "://" +
                                 (ipv6 ? "[" + parsed.host + "]" : parsed.host) + ":" +
                                 std::to_string(parsed.port);
    if (parsed.origin != expected) std::abort();
  } catch (const bulwark::config_error& e) {
    // The message must never show the credentials as written: "user:password@".
    const auto scheme = url.find("://");
    const auto at = url.find('@', scheme == std::string_view::npos ? 0 : scheme + 3);
    if (scheme != std::string_view::npos && at != std::string_view::npos && at > scheme + 3) {
      const std::string credentials{url.substr(scheme + 3, at - scheme - 2)};  // through the '@'
      if (std::string_view{e.what()}.find(credentials) != std::string_view::npos) std::abort();
    }
  }
  return 0;
}
