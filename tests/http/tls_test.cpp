// HTTPS through ResilientHttpClient against a local httplib::SSLServer whose certificate (for IP
// 127.0.0.1) is signed by a throwaway CA made with the openssl CLI at test time.
#include <catch2/catch.hpp>

#include <string>

#include "support.hpp"

namespace {

using bulwark::http::ResilientHttpClient;
using bulwark::http::transport_error;
using bulwark::http::TransportErrorKind;

}  // namespace

TEST_CASE("https succeeds when ca_cert_path trusts the server's CA", "[http][tls]") {
  const auto& pki = http_test::test_pki();
  test_api::Server server{{.threads = 8, .cert_path = pki.server_cert, .key_path = pki.server_key}};
  REQUIRE(server.base_url().rfind("https://127.0.0.1:", 0) == 0);
  auto config = http_test::fast_config();
  config.pool.ca_cert_path = pki.ca_cert;
  ResilientHttpClient client{server.base_url(), config};

  for (int i = 0; i < 20; ++i)
    CHECK(client.get("/users/5").body.find(R"("id":5)") != std::string::npos);
  CHECK(server.stats().connections == 1);
}

TEST_CASE("https verifies certificates: an untrusted server is a transport_error tls",
          "[http][tls]") {
  const auto& pki = http_test::test_pki();
  test_api::Server server{{.threads = 8, .cert_path = pki.server_cert, .key_path = pki.server_key}};
  auto config = http_test::fast_config();
  config.retry.max_attempts = 1;

  SECTION("the system's store alone does not know the test CA") {}
  SECTION("a ca_cert_path with another CA does not turn verification off") {
    config.pool.ca_cert_path = pki.other_ca_cert;
  }

  ResilientHttpClient client{server.base_url(), config};
  try {
    (void)client.get("/users/5");
    FAIL("no exception");
  } catch (const transport_error& e) {
    CHECK(e.kind() == TransportErrorKind::tls);
  }
  CHECK(server.stats().requests == 0);
}

TEST_CASE("a ca_cert_path that cannot be loaded is a config_error", "[http][tls]") {
  auto config = http_test::fast_config();
  config.pool.ca_cert_path = "/nonexistent/ca.pem";
  CHECK_THROWS_WITH(ResilientHttpClient("https://127.0.0.1:8443", config),
                    "PoolConfig.ca_cert_path must name a readable PEM file of certificates, got "
                    "/nonexistent/ca.pem");
}
