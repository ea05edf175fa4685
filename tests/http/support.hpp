// tests/http/support.hpp — shared setup for the HTTP adapter's tests: the in-process test API,
// a fast config, throwaway TLS certificates and a port that never answers.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bulwark/http.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../examples/test_api_server.hpp"

namespace http_test {

using namespace std::chrono_literals;

// OpenSSL and a server closing mid-response can raise SIGPIPE; a test process ignores it.
inline const bool sigpipe_ignored = [] {
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

/// A config for tests: no rate limiting, retries 1 ms apart, short timeouts and open_timeout.
inline bulwark::http::ResilienceConfig fast_config() {
  auto config = bulwark::http::production_config();
  config.rate_limiter.max_requests = 1'000'000;
  config.rate_limiter.window = 1s;
  config.rate_limiter.burst = 1'000'000;
  config.retry.initial_delay = 1ms;
  config.retry.max_delay = 20ms;
  config.retry.jitter_factor = 0.0;
  config.circuit_breaker.open_timeout = 150ms;
  config.pool.connections = 4;
  config.pool.connect_timeout = 1s;
  config.pool.headers_timeout = 1s;
  config.pool.body_timeout = 1s;
  return config;
}

/// Milliseconds elapsed since `start` on the steady clock.
inline long long elapsed_ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

/// A loopback port nobody listens on (bound, then closed).
inline int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    throw std::runtime_error("closed_port: bind failed");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

/// A loopback listener that never accepts, its backlog filled: a connect to it hangs until the
/// client's connect timeout.
class BlackHole {
 public:
  BlackHole() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 0) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("BlackHole: listen failed");
    }
    port_ = ntohs(address.sin_port);
    for (int i = 0; i < 4; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      (void)::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
      fillers_.push_back(fd);
    }
  }
  BlackHole(const BlackHole&) = delete;
  BlackHole& operator=(const BlackHole&) = delete;
  ~BlackHole() {
    for (const int fd : fillers_) ::close(fd);
    ::close(listener_);
  }
  [[nodiscard]] int port() const noexcept { return port_; }

 private:
  int listener_ = -1;
  int port_ = 0;
  std::vector<int> fillers_;
};

/// Throwaway PKI made with the openssl CLI in a temporary directory, removed at exit: a CA, a
/// server certificate for IP 127.0.0.1 signed by it, and a second CA that signed nothing.
struct TestPki {
  std::filesystem::path dir;
  std::string ca_cert, other_ca_cert, server_cert, server_key;

  TestPki() = default;
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;
  ~TestPki() {
    std::error_code ignored;
    if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
  }
};

inline void run_openssl(const std::string& arguments) {
  const std::string command = "openssl " + arguments + " >/dev/null 2>&1";
  if (std::system(command.c_str()) != 0) throw std::runtime_error("openssl failed: " + command);
}

// Made once per process, on first use; the directory goes when the process exits normally.
inline const TestPki& test_pki() {
  static TestPki pki;
  static const bool made = [] {
    TestPki& mutable_pki = pki;
    char pattern[] = "/tmp/bulwark-http-test-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    mutable_pki.dir = pattern;
    const std::string d = mutable_pki.dir.string();
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for (const char* name : {"ca", "other_ca"}) {
      run_openssl("req -x509" + ec + " -keyout " + d + "/" + name + ".key -out " + d + "/" + name +
                  ".pem -days 2 -subj /CN=bulwark-test-" + name +
                  " -addext basicConstraints=critical,CA:TRUE"
                  " -addext keyUsage=critical,keyCertSign,cRLSign");
    }
    run_openssl("req" + ec + " -keyout " + d + "/server.key -out " + d +
                "/server.csr -subj /CN=127.0.0.1");
    {
      std::FILE* ext = std::fopen((d + "/server.ext").c_str(), "w");
      if (ext == nullptr) throw std::runtime_error("cannot write server.ext");
      std::fputs(
          "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
          "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
          ext);
      std::fclose(ext);
    }
    run_openssl("x509 -req -in " + d + "/server.csr -CA " + d + "/ca.pem -CAkey " + d +
                "/ca.key -CAcreateserial -out " + d + "/server.pem -days 2 -extfile " + d +
                "/server.ext");
    mutable_pki.ca_cert = d + "/ca.pem";
    mutable_pki.other_ca_cert = d + "/other_ca.pem";
    mutable_pki.server_cert = d + "/server.pem";
    mutable_pki.server_key = d + "/server.key";
    return true;
  }();
  (void)made;
  return pki;
}

}  // namespace http_test
