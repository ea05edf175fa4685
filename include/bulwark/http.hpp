// bulwark/http.hpp — ResilientHttpClient: the seed's resilience stack around a pool of keep-alive
// cpp-httplib clients (rate limiter -> bulkhead -> circuit breaker -> retry -> connection pool).
//
//   bulwark::http::ResilientHttpClient client{"https://api.example.com"};   // production_config()
//   bulwark::http::Response user = client.get("/users/123");               // http_error if >= 400
//   auto m = client.metrics();           // m.circuit_breaker.state, m.bulkhead.active_count...
//   client.request({.method = "POST", .path = "/users", .headers = {{"Idempotency-Key", "k1"}},
//                   .body = R"({"name":"Ada"})", .content_type = "application/json"});
//
// Needs cpp-httplib (Debian: libcpp-httplib-dev, a compiled library built with OpenSSL: use its
// pkg-config cflags, -DCPPHTTPLIB_OPENSSL_SUPPORT etc., so the header matches the library).
// For https, ignore SIGPIPE in the process (OpenSSL writes to sockets without MSG_NOSIGNAL).
//
// How PoolConfig's timeouts bound each phase of an attempt (cpp-httplib has one connect, one read
// and one write timeout per client, each applied to every single wait on the socket):
//   connect_timeout        -> set_connection_timeout: TCP connect and the TLS handshake.
//   headers_timeout,
//   body_timeout           -> set_read_timeout(min(headers_timeout, body_timeout)): the longest
//                             wait for the next bytes of the response, headers or body alike.
//                             httplib cannot tell the phases apart, so the stricter bound applies
//                             to both; it limits each silence, not the total time of a slowly
//                             trickling response (a Context deadline bounds that).
//   body_timeout           -> also set_write_timeout: the longest wait to send the next bytes of
//                             the request (the seed has no separate send timeout).
//   keep_alive_timeout     -> the pool's idle_timeout: a connection idle this long is closed, not
//                             reused (keep it below the server's keep-alive timeout).
//   keep_alive_max_timeout -> the pool's max_lifetime: an older connection is replaced.
//   connect_timeout        -> also the pool's acquire_timeout: the longest wait for a free pooled
//                             connection when all are busy.
// With a Context deadline, every attempt sets each of these to min(configured, time left), and the
// policies never wait or sleep past it, so the whole call, retries included, ends by the deadline
// (a response still trickling in when it passes can overrun it by one socket wait).
#pragma once

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "bulwark.hpp"
#include "detail/validate.hpp"

namespace bulwark::http {

/// Header fields: a multimap whose names compare case-insensitively (cpp-httplib's).
using Headers = httplib::Headers;

/// One HTTP request, relative to the client's base URL.
struct Request {
  std::string method = "GET";  ///< An HTTP token: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, ...
  std::string path = "/";  ///< Starts with '/'; appended to the base URL's path; may hold a query.
  Headers headers{};       ///< Extra header fields; no CR, LF or NUL in names or values.
  std::string body{};      ///< Sent as is (Content-Length); empty: no body.
  std::string content_type{};  ///< Content-Type of body; empty: the headers' (or text/plain).
  /// Whether the request may be sent twice. Unset: GET, HEAD, PUT, DELETE, OPTIONS and TRACE are,
  /// other methods only with an Idempotency-Key header. false turns retries off for any method.
  std::optional<bool> idempotent{};
};

/// A complete HTTP response.
struct Response {
  int status = 0;      ///< Status code, e.g. 200.
  Headers headers{};   ///< Response header fields.
  std::string body{};  ///< The whole body (decompressed), at most PoolConfig::max_body_size bytes.
};

/// Why a request got no complete response.
enum class TransportErrorKind {
  connect,           ///< The TCP connection could not be made (refused, unreachable, no such host).
  timeout,           ///< Connecting, sending or waiting for response bytes took too long.
  connection_reset,  ///< The peer closed or reset the connection before the response was complete.
  read,              ///< The response could not be read otherwise (bad framing, decompression).
  write,             ///< The request could not be sent.
  tls,               ///< TLS handshake or certificate verification failed.
  body_too_large,    ///< The response body exceeded PoolConfig::max_body_size (reading stopped).
};

/// The name of a TransportErrorKind, e.g. "connection_reset".
[[nodiscard]] constexpr std::string_view to_string(TransportErrorKind kind) noexcept {
  switch (kind) {
    case TransportErrorKind::connect:
      return "connect";
    case TransportErrorKind::timeout:
      return "timeout";
    case TransportErrorKind::connection_reset:
      return "connection_reset";
    case TransportErrorKind::read:
      return "read";
    case TransportErrorKind::write:
      return "write";
    case TransportErrorKind::tls:
      return "tls";
    case TransportErrorKind::body_too_large:
      return "body_too_large";
  }
  return "unknown";
}

/// Parses a Retry-After field value: delay-seconds ("120") or an HTTP-date (IMF-fixdate, RFC 850
/// or asctime form) taken relative to `now`. Returns the wait, zero when the value is absent,
/// malformed or in the past. Pure; never throws.
[[nodiscard]] std::chrono::milliseconds parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) noexcept;

/// The upstream answered with a final status >= 400. Carries the whole response; retry_after()
/// comes from its Retry-After field, measured against the system clock when the error was made.
/// Copying never throws (the response is shared).
class http_error : public std::runtime_error, public retry_hint {
 public:
  /// `message` becomes what(); it must not hold credentials (the client's never do).
  http_error(const std::string& message, Response response)
      : std::runtime_error(message),
        response_(std::make_shared<const Response>(std::move(response))),
        retry_after_(retry_after_of(*response_)) {}

  /// The status code, e.g. 503.
  [[nodiscard]] int status() const noexcept { return response_->status; }
  /// The response: status, headers and (capped) body.
  [[nodiscard]] const Response& response() const noexcept { return *response_; }
  /// The Retry-After wait (seconds or HTTP-date); zero without a usable Retry-After.
  [[nodiscard]] std::chrono::milliseconds retry_after() const noexcept override {
    return retry_after_;
  }

 private:
  static std::chrono::milliseconds retry_after_of(const Response& response) noexcept {
    const auto found = response.headers.find("Retry-After");
    if (found == response.headers.end()) return std::chrono::milliseconds{0};
    return parse_retry_after(found->second, std::chrono::system_clock::now());
  }

  std::shared_ptr<const Response> response_;
  std::chrono::milliseconds retry_after_;
};

/// The request got no complete response: see kind(). what() names the method and URL (without
/// userinfo or query string), never a credential.
class transport_error : public std::runtime_error {
 public:
  transport_error(TransportErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  /// What went wrong.
  [[nodiscard]] TransportErrorKind kind() const noexcept { return kind_; }

 private:
  TransportErrorKind kind_;
};

/// The connection pool, named and defaulted as the seed's undici Pool options. See the file
/// comment for how each timeout maps to cpp-httplib.
struct PoolConfig {
  /// Keep-alive connections to the origin at most (seed: connections). At least 1.
  std::size_t connections = 10;
  /// Requests in flight per connection: 1 (0 means the same). More is refused: cpp-httplib sends
  /// one request at a time per connection.
  std::size_t pipelining = 1;
  /// Longest TCP connect (and TLS handshake); also the longest wait for a free pooled connection.
  /// Above 0.
  std::chrono::milliseconds connect_timeout{10'000};
  /// Longest silence while receiving the body or sending the request. Above 0.
  std::chrono::milliseconds body_timeout{30'000};
  /// Longest silence while waiting for the response headers. Above 0.
  std::chrono::milliseconds headers_timeout{10'000};
  /// An idle connection unused for this long is closed, not reused. Above 0.
  std::chrono::milliseconds keep_alive_timeout{4'000};
  /// A connection open this long is replaced. Above 0.
  std::chrono::milliseconds keep_alive_max_timeout{600'000};
  /// Largest response body in bytes (8 MiB); a longer one ends, while being read, in
  /// transport_error{body_too_large}. At least 1.
  std::size_t max_body_size = 8 * 1024 * 1024;
  /// PEM file of the CA certificates to trust for https (cpp-httplib's set_ca_cert_path), say a
  /// private CA; it replaces the system's store and never turns verification off. Empty: the
  /// system's store.
  std::string ca_cert_path{};

  /// Throws config_error naming the first bad field.
  void validate() const {
    bulwark::detail::require(connections >= 1, "PoolConfig", "connections", "must be at least 1",
                             connections);
    bulwark::detail::require(
        pipelining <= 1, "PoolConfig", "pipelining",
        "must be 0 or 1 (HTTP pipelining is not supported: one request at a time per "
        "connection)",
        pipelining);
    bulwark::detail::require(connect_timeout.count() > 0, "PoolConfig", "connect_timeout",
                             "must be above 0", connect_timeout);
    bulwark::detail::require(body_timeout.count() > 0, "PoolConfig", "body_timeout",
                             "must be above 0", body_timeout);
    bulwark::detail::require(headers_timeout.count() > 0, "PoolConfig", "headers_timeout",
                             "must be above 0", headers_timeout);
    bulwark::detail::require(keep_alive_timeout.count() > 0, "PoolConfig", "keep_alive_timeout",
                             "must be above 0", keep_alive_timeout);
    bulwark::detail::require(keep_alive_max_timeout.count() > 0, "PoolConfig",
                             "keep_alive_max_timeout", "must be above 0", keep_alive_max_timeout);
    bulwark::detail::require(max_body_size >= 1, "PoolConfig", "max_body_size",
                             "must be at least 1", max_body_size);
  }
};

/// Every setting of a ResilientHttpClient, as the seed's PRODUCTION_RESILIENCE_CONFIG groups them.
struct ResilienceConfig {
  /// Connections and timeouts.
  PoolConfig pool{};
  /// Empty is_failure: the client's HTTP classification (is_upstream_failure).
  CircuitBreakerConfig circuit_breaker{};
  /// Concurrent calls and their queue.
  BulkheadConfig bulkhead{};
  /// Calls per window.
  RateLimiterConfig rate_limiter{};
  /// Empty retry_on: the client's HTTP classification (is_upstream_failure).
  RetryConfig retry{};
};

/// The seed's PRODUCTION_RESILIENCE_CONFIG: 10 connections, 5 failures open the breaker for 60 s,
/// 10 concurrent + 20 queued calls, 50 calls a minute (burst 60), 3 attempts from 100 ms.
/// retry.retry_on is empty: the client classifies by status and error kind instead of the seed's
/// regular expressions (which would match "500" inside any message).
[[nodiscard]] inline ResilienceConfig production_config() {
  using std::chrono::milliseconds;
  ResilienceConfig config;
  config.pool.connections = 10;
  config.pool.pipelining = 1;
  config.pool.connect_timeout = milliseconds{10'000};
  config.pool.body_timeout = milliseconds{30'000};
  config.pool.headers_timeout = milliseconds{10'000};
  config.pool.keep_alive_timeout = milliseconds{4'000};
  config.pool.keep_alive_max_timeout = milliseconds{600'000};
  config.circuit_breaker.failure_threshold = 5;
  config.circuit_breaker.success_threshold = 2;
  config.circuit_breaker.open_timeout = milliseconds{60'000};
  config.circuit_breaker.monitoring_period = milliseconds{120'000};
  config.bulkhead.max_concurrent = 10;
  config.bulkhead.max_queue = 20;
  config.bulkhead.queue_timeout = milliseconds{5'000};
  config.rate_limiter.max_requests = 50;
  config.rate_limiter.window = milliseconds{60'000};
  config.rate_limiter.burst = 60;
  config.retry.max_attempts = 3;
  config.retry.initial_delay = milliseconds{100};
  config.retry.max_delay = milliseconds{5'000};
  config.retry.backoff_multiplier = 2.0;
  config.retry.jitter_factor = 0.1;
  return config;
}

/// True for the statuses the client retries and the breaker counts: 429 and 5xx.
[[nodiscard]] constexpr bool is_retryable_status(int status) noexcept {
  return status == 429 || status >= 500;
}

/// The client's classification of an upstream failure, used when the config leaves the breaker's
/// is_failure or the retry's retry_on empty: http_error with 429 or 5xx, and transport_error but
/// body_too_large. Other 4xx, body_too_large and bulwark's own errors (deadline_exceeded_error
/// included) are not failures of the upstream.
[[nodiscard]] inline bool is_upstream_failure(const std::exception& e) noexcept {
  if (const auto* status = dynamic_cast<const http_error*>(&e))
    return is_retryable_status(status->status());
  if (const auto* transport = dynamic_cast<const transport_error*>(&e)) {
    return transport->kind() != TransportErrorKind::body_too_large;
  }
  return false;
}

namespace detail {

/// A base URL taken apart. `origin` is scheme://host:port, safe to print (no userinfo).
struct BaseUrl {
  bool tls = false;
  std::string host;  // without brackets for IPv6
  int port = 0;
  bool has_userinfo = false;
  std::string username;     // percent-decoded
  std::string password;     // percent-decoded
  std::string path_prefix;  // "" or "/v1" (no trailing '/')
  std::string origin;
};

/// Parses http[s]://[user[:password]@]host[:port][/path]; throws config_error (without userinfo).
BaseUrl parse_base_url(std::string_view url);

/// Throws std::invalid_argument, naming the field, when the request cannot be sent as is: a
/// method that is not a token, a path not starting with '/', CR, LF or NUL in the path, a header
/// name that is not a token, CR, LF or NUL in a header value or the content type.
void validate_request(const Request& request);

/// Whether `path` names a readable file holding at least one PEM certificate.
bool holds_pem_certificate(const std::string& path);

/// Whether a request may be repeated, as Request::idempotent documents.
bool is_idempotent(const Request& request) noexcept;

/// Every live httplib client of one ResilientHttpClient, so close() can shut their sockets even
/// while requests use them. Touched when a connection opens or closes, never per request.
class ClientRegistry {
 public:
  void add(httplib::ClientImpl* client) {
    const std::scoped_lock lock{mutex_};
    clients_.push_back(client);
  }
  void remove(httplib::ClientImpl* client) noexcept {
    const std::scoped_lock lock{mutex_};
    const auto found = std::find(clients_.begin(), clients_.end(), client);
    if (found != clients_.end()) {
      *found = clients_.back();
      clients_.pop_back();
    }
  }
  // Shuts every client's socket; a request in flight on one fails at once.
  void stop_all() noexcept {
    const std::scoped_lock lock{mutex_};
    for (auto* client : clients_) client->stop();
  }

 private:
  std::mutex mutex_;
  std::vector<httplib::ClientImpl*> clients_;
};

/// What every connection and call of one client shares; immutable but for closed and registry.
struct ClientShared {
  BaseUrl url;
  PoolConfig pool;
  std::atomic<bool> closed{false};
  ClientRegistry registry;
};

/// One pooled keep-alive connection: an httplib client holding one socket. Move-only; closing
/// (destroying) it closes the socket.
class Connection {
 public:
  explicit Connection(std::shared_ptr<ClientShared> shared);
  Connection(Connection&& other) noexcept = default;
  Connection& operator=(Connection&& other) noexcept {
    if (this != &other) {
      release();
      client_ = std::move(other.client_);
      shared_ = std::move(other.shared_);
    }
    return *this;
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { release(); }

  httplib::ClientImpl& client() noexcept { return *client_; }

 private:
  void release() noexcept {
    if (client_) {
      shared_->registry.remove(client_.get());
      client_.reset();
    }
  }

  std::unique_ptr<httplib::ClientImpl> client_;
  std::shared_ptr<ClientShared> shared_;
};

/// The state of one request() call, on its caller's stack; every attempt reuses it.
struct Call {
  ClientShared* shared = nullptr;
  httplib::Request request;  // prepared once; httplib adds Host, Accept, ... on the first attempt
  std::string body;          // the response body of the current attempt
  bool body_too_large = false;

  // A message prefix naming the call without credentials or query: "GET http://host:port/path".
  std::string describe() const {
    const std::string_view path{request.path};
    return request.method + " " + shared->url.origin + std::string(path.substr(0, path.find('?')));
  }
};

/// What an attempt returns through the pool: the response and the call it belongs to.
struct Reply {
  Response response;
  const Call* call;
};

/// One attempt: sends the call's request on a pooled connection. Throws transport_error,
/// deadline_exceeded_error, cancelled_error or bulwark::error (client closed).
struct Attempt {
  Call* call;
  Reply operator()(Connection& connection, const Context& ctx) const;
};

/// The pipeline stage between retry and the pool: a final status >= 400 becomes http_error above
/// the pool, so the connection that carried an error response is reused, not discarded.
struct RaiseForStatus {
  template <class F>
  Response execute(const Context& ctx, F&& next) {
    Reply reply = next(ctx);
    if (reply.response.status >= 400) {
      throw http_error("bulwark::http: " + reply.call->describe() + " answered HTTP " +
                           std::to_string(reply.response.status),
                       std::move(reply.response));
    }
    return std::move(reply.response);
  }
};

}  // namespace detail

/// An HTTP client for one origin behind the seed's resilience stack, in the seed's order:
/// RateLimiter -> Bulkhead -> CircuitBreaker -> RetryStrategy -> ConnectionPool, built as one
/// bulwark::Pipeline. Each pooled connection is one keep-alive, TCP_NODELAY cpp-httplib client.
///
/// Classification (unless the config supplies is_failure / retry_on): 429 and 5xx answers and
/// transport errors are retried and counted by the breaker; other 4xx answers, body_too_large,
/// and bulwark's own rejections (deadline_exceeded_error included) are neither. A final status
/// >= 400 throws http_error. Requests that are not idempotent (see Request::idempotent) get one
/// attempt. A Retry-After on a retried answer stretches the backoff; one beyond retry.max_delay
/// ends the retries at once. The Context's deadline bounds the whole call: an attempt cut by it
/// ends in deadline_exceeded_error; when the next backoff sleep would cross it, the last error is
/// rethrown at once. Its stop token cancels waits, sleeps and the request in flight
/// (cancelled_error).
///
/// Thread-safe: every member may be called concurrently. Not copyable or movable; must not be
/// destroyed while a call is under way.
class ResilientHttpClient {
 public:
  /// Every component's metrics at one moment (each may be stale at once).
  struct Metrics {
    CircuitBreakerMetrics circuit_breaker{};  ///< State and counts of the breaker.
    BulkheadMetrics bulkhead{};               ///< Active and queued calls.
    RateLimiterMetrics rate_limiter{};        ///< Tokens left.
    RetryMetrics retry{};                     ///< Attempts and retries.
    ConnectionPoolMetrics pool{};             ///< Open, idle and reused connections.
  };

  /// Targets `base_url` (http:// or https://, optional userinfo sent as Basic auth, optional path
  /// prefix). Throws config_error for a bad URL or config; opens no connection yet.
  explicit ResilientHttpClient(std::string base_url, ResilienceConfig config = production_config());

  ResilientHttpClient(const ResilientHttpClient&) = delete;
  ResilientHttpClient& operator=(const ResilientHttpClient&) = delete;
  ResilientHttpClient(ResilientHttpClient&&) = delete;
  ResilientHttpClient& operator=(ResilientHttpClient&&) = delete;
  ~ResilientHttpClient() = default;

  /// Sends `request` through the stack and returns the final response (status < 400). Throws
  /// std::invalid_argument (bad header, path or method; nothing sent), http_error,
  /// transport_error, the policies' rejections (rate_limited_error, bulkhead_rejected_error,
  /// circuit_open_error, pool_exhausted_error), cancelled_error or deadline_exceeded_error
  /// (from `ctx`), or bulwark::error after close().
  Response request(Request request, const Context& ctx = {});

  /// Same as request({.method = "GET", .path = path, .headers = headers}).
  Response get(std::string path, Headers headers = {}) {
    Request request;
    request.path = std::move(path);
    request.headers = std::move(headers);
    return this->request(std::move(request));
  }

  /// A snapshot of every component's metrics.
  [[nodiscard]] Metrics metrics() const;

  /// Closes every pooled connection now, shutting the sockets of requests in flight (they fail
  /// with bulwark::error); later requests throw bulwark::error. Idempotent.
  void close() noexcept;

 private:
  // A call flows down the stages in order; each may reject, wait, repeat or pass it on:
  //   RateLimiter -- no token -------------------------------------------> rate_limited_error
  //   Bulkhead    -- no slot within queue_timeout ------------------------> bulkhead_rejected_error
  //   Breaker     -- open ------------------------------------------------> circuit_open_error
  //   Retry       -- failure it retries: sleep the backoff, run the stages below again
  //   RaiseForStatus -- status >= 400 -------------------------------------> http_error
  //   Pool        -- no connection within acquire_timeout ----------------> pool_exhausted_error
  //   Attempt     -- httplib send() fails ---------------------------------> transport_error
  using Stack = Pipeline<RateLimiter<>, Bulkhead<>, CircuitBreaker<>, RetryStrategy<>,
                         detail::RaiseForStatus, ConnectionPool<detail::Connection>>;

  static Stack make_stack(const std::shared_ptr<detail::ClientShared>& shared,
                          ResilienceConfig& config);

  std::shared_ptr<detail::ClientShared> shared_;
  Stack stack_;
};

// ----------------------------------------------------------------------------------------------
// Definitions.

inline ResilientHttpClient::ResilientHttpClient(std::string base_url, ResilienceConfig config)
    : shared_([&] {
        config.pool.validate();
        auto shared = std::make_shared<detail::ClientShared>();
        shared->url = detail::parse_base_url(base_url);
        shared->pool = config.pool;
        return shared;
      }()),
      stack_(make_stack(shared_, config)) {}

inline ResilientHttpClient::Stack ResilientHttpClient::make_stack(
    const std::shared_ptr<detail::ClientShared>& shared, ResilienceConfig& config) {
  if (!config.circuit_breaker.is_failure) config.circuit_breaker.is_failure = is_upstream_failure;
  if (!config.retry.retry_on) config.retry.retry_on = is_upstream_failure;
  const PoolConfig& pool = config.pool;
  if (!pool.ca_cert_path.empty()) {
    bulwark::detail::require(detail::holds_pem_certificate(pool.ca_cert_path), "PoolConfig",
                             "ca_cert_path", "must name a readable PEM file of certificates",
                             pool.ca_cert_path);
  }
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
  bulwark::detail::require(!shared->url.tls, "ResilientHttpClient", "base_url",
                           "needs cpp-httplib built with CPPHTTPLIB_OPENSSL_SUPPORT for https",
                           shared->url.origin);
#endif
  return Stack{RateLimiter<>{std::move(config.rate_limiter)},
               Bulkhead<>{std::move(config.bulkhead)},
               CircuitBreaker<>{std::move(config.circuit_breaker)},
               RetryStrategy<>{std::move(config.retry)},
               detail::RaiseForStatus{},
               ConnectionPool<detail::Connection>{
                   [shared] { return detail::Connection{shared}; },
                   ConnectionPoolConfig{.max_connections = pool.connections,
                                        .idle_timeout = pool.keep_alive_timeout,
                                        .max_lifetime = pool.keep_alive_max_timeout,
                                        .acquire_timeout = pool.connect_timeout}}};
}

inline Response ResilientHttpClient::request(Request request, const Context& ctx) {
  // relaxed: a request racing close() may start or not; close() then stops its socket anyway.
  if (shared_->closed.load(std::memory_order_relaxed))
    throw error("bulwark::http: the client is closed");
  detail::validate_request(request);
  const bool idempotent = ctx.idempotent && detail::is_idempotent(request);

  detail::Call call;
  call.shared = shared_.get();
  httplib::Request& out = call.request;
  out.method = std::move(request.method);
  const std::string& prefix = shared_->url.path_prefix;
  out.path = prefix.empty() ? std::move(request.path) : prefix + request.path;
  out.headers = std::move(request.headers);
  if (!request.content_type.empty() && out.headers.find("Content-Type") == out.headers.end()) {
    out.headers.emplace("Content-Type", std::move(request.content_type));
  }
  out.body = std::move(request.body);
  // The body is read into call.body, counted as it arrives: over max_body_size, reading stops.
  out.response_handler = [c = &call](const httplib::Response& response) {
    const std::size_t limit = c->shared->pool.max_body_size;
    const auto length = response.headers.find("Content-Length");
    if (length != response.headers.end()) {
      std::uint64_t declared = 0;
      const std::string& text = length->second;
      const auto parsed = std::from_chars(text.data(), text.data() + text.size(), declared);
      if (parsed.ec == std::errc{} && declared > limit) {
        c->body_too_large = true;
        return false;
      }
      if (parsed.ec == std::errc{}) c->body.reserve(static_cast<std::size_t>(declared));
    }
    return true;
  };
  out.content_receiver = [c = &call](const char* data, std::size_t size, std::uint64_t,
                                     std::uint64_t) {
    if (size > c->shared->pool.max_body_size - c->body.size()) {
      c->body_too_large = true;
      return false;
    }
    c->body.append(data, size);
    return true;
  };

  const Context inner{.stop = ctx.stop, .deadline = ctx.deadline, .idempotent = idempotent};
  return stack_.execute(inner, detail::Attempt{&call});
}

inline ResilientHttpClient::Metrics ResilientHttpClient::metrics() const {
  auto [limiter, bulkhead, breaker, retry, raise, pool] = stack_.metrics();
  (void)raise;
  return Metrics{.circuit_breaker = breaker,
                 .bulkhead = bulkhead,
                 .rate_limiter = limiter,
                 .retry = retry,
                 .pool = pool};
}

inline void ResilientHttpClient::close() noexcept {
  shared_->closed.store(true, std::memory_order_relaxed);  // relaxed: see request()
  stack_.get<5>().close();
  shared_->registry.stop_all();
}

namespace detail {

inline Connection::Connection(std::shared_ptr<ClientShared> shared) : shared_(std::move(shared)) {
  const BaseUrl& url = shared_->url;
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
  if (url.tls) {
    auto tls = std::make_unique<httplib::SSLClient>(url.host, url.port);
    tls->enable_server_certificate_verification(true);
    if (!shared_->pool.ca_cert_path.empty())
      tls->set_ca_cert_path(shared_->pool.ca_cert_path.c_str());
    client_ = std::move(tls);
  } else {
    client_ = std::make_unique<httplib::ClientImpl>(url.host, url.port);
  }
#else
  client_ = std::make_unique<httplib::ClientImpl>(url.host, url.port);
#endif
  client_->set_keep_alive(true);
  client_->set_tcp_nodelay(true);
  client_->set_follow_location(false);
  if (url.has_userinfo) client_->set_basic_auth(url.username, url.password);
  try {
    shared_->registry.add(client_.get());
  } catch (...) {
    client_.reset();
    throw;
  }
}

// Calls ClientImpl::stop() when a call's stop token fires: the request in flight fails at once.
struct StopClient {
  httplib::ClientImpl* client;
  void operator()() const noexcept { client->stop(); }
};

// Maps httplib's error for a failed attempt onto a kind. httplib reports a read timeout and a
// closed connection both as Error::Read (errno tells nothing either), so the attempt's duration
// decides: at least the read timeout (less the poll's millisecond rounding) means a timeout.
inline TransportErrorKind classify(httplib::Error error, SteadyClock::duration elapsed,
                                   SteadyClock::duration read_timeout,
                                   SteadyClock::duration write_timeout) noexcept {
  const auto rounding = std::chrono::milliseconds{1};
  switch (error) {
    case httplib::Error::Connection:
    case httplib::Error::BindIPAddress:
      return TransportErrorKind::connect;
    case httplib::Error::ConnectionTimeout:
      return TransportErrorKind::timeout;
    case httplib::Error::Read:
      return elapsed + rounding >= read_timeout ? TransportErrorKind::timeout
                                                : TransportErrorKind::connection_reset;
    case httplib::Error::Write:
      return elapsed + rounding >= write_timeout ? TransportErrorKind::timeout
                                                 : TransportErrorKind::write;
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLLoadingCerts:
    case httplib::Error::SSLServerVerification:
      return TransportErrorKind::tls;
    default:
      return TransportErrorKind::read;
  }
}

inline Reply Attempt::operator()(Connection& connection, const Context& ctx) const {
  ClientShared& shared = *call->shared;
  if (shared.closed.load(std::memory_order_relaxed))
    throw error("bulwark::http: the client is closed");
  if (ctx.stop.stop_requested()) throw cancelled_error();
  const PoolConfig& pool = shared.pool;
  httplib::ClientImpl& client = connection.client();

  const auto start = SteadyClock{}.now();
  SteadyClock::duration connect_timeout = pool.connect_timeout;
  SteadyClock::duration read_timeout = std::min(pool.headers_timeout, pool.body_timeout);
  SteadyClock::duration write_timeout = pool.body_timeout;
  bool cut_by_deadline = false;  // some timeout is the time left, not the configured one
  if (ctx.deadline) {
    const auto left = *ctx.deadline - start;
    if (left <= SteadyClock::duration::zero()) throw deadline_exceeded_error();
    cut_by_deadline = left < std::max({connect_timeout, read_timeout, write_timeout});
    connect_timeout = std::min(connect_timeout, left);
    read_timeout = std::min(read_timeout, left);
    write_timeout = std::min(write_timeout, left);
  }
  client.set_connection_timeout(
      std::chrono::duration_cast<std::chrono::microseconds>(connect_timeout));
  client.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(read_timeout));
  client.set_write_timeout(std::chrono::duration_cast<std::chrono::microseconds>(write_timeout));

  call->body.clear();
  call->body_too_large = false;
  httplib::Response response;
  httplib::Error failure = httplib::Error::Success;
  bool ok = false;
  if (ctx.stop.stop_possible()) {
    const std::stop_callback on_stop{ctx.stop, StopClient{&client}};
    if (ctx.stop.stop_requested()) throw cancelled_error();
    ok = client.send(call->request, response, failure);
  } else {
    ok = client.send(call->request, response, failure);
  }
  if (ok)
    return Reply{Response{response.status, std::move(response.headers), std::move(call->body)},
                 call};

  if (call->body_too_large) {
    throw transport_error(TransportErrorKind::body_too_large,
                          "bulwark::http: " + call->describe() + " failed: body_too_large (over " +
                              std::to_string(pool.max_body_size) + " bytes)");
  }
  if (shared.closed.load(std::memory_order_relaxed))
    throw error("bulwark::http: the client is closed");
  if (ctx.stop.stop_requested()) throw cancelled_error();
  const auto now = SteadyClock{}.now();
  if (ctx.deadline && now >= *ctx.deadline) throw deadline_exceeded_error();
  const TransportErrorKind kind = classify(failure, now - start, read_timeout, write_timeout);
  if (kind == TransportErrorKind::timeout && cut_by_deadline) throw deadline_exceeded_error();
  throw transport_error(kind, "bulwark::http: " + call->describe() +
                                  " failed: " + std::string(to_string(kind)) +
                                  " (cpp-httplib: " + httplib::to_string(failure) + ")");
}

inline bool is_token_char(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
}

inline bool is_token(std::string_view text) noexcept {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_token_char);
}

inline bool has_line_break(std::string_view text) noexcept {
  return text.find_first_of(std::string_view{"\r\n\0", 3}) != std::string_view::npos;
}

// Renders a name for an error message: printable ASCII as is, anything else as \r, \n or \xNN.
inline std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c >= 0x20 && c < 0x7f) {
      out += c;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X",
                    static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += hex;
    }
  }
  return out;
}

inline void validate_request(const Request& request) {
  if (!is_token(request.method)) {
    throw std::invalid_argument("bulwark::http: request method \"" + printable(request.method) +
                                "\" is not an HTTP token");
  }
  if (request.path.empty() || request.path.front() != '/') {
    throw std::invalid_argument("bulwark::http: request path must start with '/'");
  }
  if (has_line_break(request.path)) {
    throw std::invalid_argument("bulwark::http: request path contains CR, LF or NUL");
  }
  for (const auto& [name, value] : request.headers) {
    if (!is_token(name)) {
      throw std::invalid_argument("bulwark::http: header name \"" + printable(name) +
                                  "\" is not an HTTP token (CR, LF, NUL, space or separator)");
    }
    if (has_line_break(value)) {
      throw std::invalid_argument("bulwark::http: header \"" + name +
                                  "\" has CR, LF or NUL in its value");
    }
  }
  if (has_line_break(request.content_type)) {
    throw std::invalid_argument(
        "bulwark::http: header \"Content-Type\" has CR, LF or NUL in its value");
  }
}

inline bool is_idempotent(const Request& request) noexcept {
  if (request.idempotent) return *request.idempotent;
  const std::string_view method = request.method;
  if (method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
      method == "OPTIONS" || method == "TRACE") {
    return true;
  }
  return request.headers.find("Idempotency-Key") != request.headers.end();
}

inline bool holds_pem_certificate(const std::string& path) {
  std::ifstream file{path, std::ios::binary};
  if (!file) return false;
  const std::string text{std::istreambuf_iterator<char>{file}, std::istreambuf_iterator<char>{}};
  return text.find("-----BEGIN CERTIFICATE-----") != std::string::npos;
}

inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline std::string percent_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
        hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

inline BaseUrl parse_base_url(std::string_view url) {
  BaseUrl out;
  const auto bad = [](std::string_view rule, std::string_view shown) {
    bulwark::detail::require(false, "ResilientHttpClient", "base_url", rule, std::string(shown));
  };
  const std::size_t scheme_end = url.find("://");
  std::string scheme{url.substr(0, scheme_end == std::string_view::npos ? 0 : scheme_end)};
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  });
  if (scheme != "http" && scheme != "https") {
    // Echo the scheme only when it looks like one: "user:secret@host://" must not be shown.
    const bool plain = !scheme.empty() && scheme.size() <= 16 &&
                       std::all_of(scheme.begin(), scheme.end(), [](unsigned char c) {
                         return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                                c == '-' || c == '.';
                       });
    bad("must start with http:// or https://", scheme_end == std::string_view::npos ? "no scheme"
                                               : plain ? scheme + "://..."
                                                       : std::string("an unrecognised scheme"));
  }
  out.tls = scheme == "https";
  std::string_view rest = url.substr(scheme_end + 3);
  const std::size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view path =
      authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
  const std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    const std::size_t colon = userinfo.find(':');
    out.has_userinfo = true;
    out.username = percent_decode(userinfo.substr(0, colon));
    out.password = colon == std::string_view::npos ? std::string{}
                                                   : percent_decode(userinfo.substr(colon + 1));
    authority = authority.substr(at + 1);
  }
  const std::string shown = scheme + "://" + std::string(authority);  // never the userinfo
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) bad("has an unclosed IPv6 bracket", shown);
    out.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') bad("has junk after the IPv6 address", shown);
    if (!after.empty()) port_text = after.substr(1);
  } else {
    const std::size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (out.host.empty()) bad("has no host", shown);
  if (has_line_break(out.host) || out.host.find_first_of(" \t") != std::string::npos)
    bad("has a bad host", shown);
  out.port = out.tls ? 443 : 80;
  if (!port_text.empty()) {
    int port = 0;
    const auto parsed =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (parsed.ec != std::errc{} || parsed.ptr != port_text.data() + port_text.size() || port < 1 ||
        port > 65535) {
      bad("has a bad port", shown);
    }
    out.port = port;
  }
  if (path.find_first_of("?#") != std::string_view::npos)
    bad("must not have a query or fragment", shown);
  if (has_line_break(path)) bad("has CR, LF or NUL in its path", shown);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  out.path_prefix = std::string(path);
  const bool ipv6 = out.host.find(':') != std::string::npos;
  out.origin =
      scheme + "://" + (ipv6 ? "[" + out.host + "]" : out.host) + ":" + std::to_string(out.port);
  return out;
}

// A cursor over a Retry-After value for the HTTP-date forms of RFC 9110 section 5.6.7.
class DateCursor {
 public:
  explicit DateCursor(std::string_view text) noexcept : text_(text) {}
  bool literal(std::string_view expected) noexcept {
    if (text_.substr(pos_, expected.size()) != expected) return false;
    pos_ += expected.size();
    return true;
  }
  // Exactly `count` digits (count 0: one or more); -1 when absent.
  long digits(std::size_t count) noexcept {
    std::size_t end = pos_;
    while (end < text_.size() && text_[end] >= '0' && text_[end] <= '9' &&
           (count == 0 || end - pos_ < count))
      ++end;
    if (end == pos_ || (count != 0 && end - pos_ != count) || end - pos_ > 9) return -1;
    long value = 0;
    for (std::size_t i = pos_; i < end; ++i) value = value * 10 + (text_[i] - '0');
    pos_ = end;
    return value;
  }
  // A month name, 1-12; 0 when absent.
  unsigned month() noexcept {
    static constexpr std::string_view names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (unsigned i = 0; i < 12; ++i) {
      if (literal(names[i])) return i + 1;
    }
    return 0;
  }
  // One of the day names (short or long); false when absent.
  bool day_name(bool long_form) noexcept {
    static constexpr std::string_view short_names[] = {"Mon", "Tue", "Wed", "Thu",
                                                       "Fri", "Sat", "Sun"};
    static constexpr std::string_view long_names[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                      "Friday", "Saturday", "Sunday"};
    for (const auto name : long_form ? long_names : short_names) {
      if (literal(name)) return true;
    }
    return false;
  }
  // hh:mm:ss into seconds since midnight; -1 when malformed.
  long time_of_day() noexcept {
    const long h = digits(2);
    if (h < 0 || h > 23 || !literal(":")) return -1;
    const long m = digits(2);
    if (m < 0 || m > 59 || !literal(":")) return -1;
    const long s = digits(2);
    if (s < 0 || s > 60) return -1;
    return h * 3600 + m * 60 + std::min(s, 59L);
  }
  bool at_end() const noexcept { return pos_ == text_.size(); }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

// The instant an HTTP-date names; nullopt when `text` is not one.
inline std::optional<std::chrono::sys_seconds> parse_http_date(
    std::string_view text, std::chrono::system_clock::time_point now) noexcept {
  using namespace std::chrono;
  long day = -1, year = -1, seconds = -1;
  unsigned month = 0;
  if (DateCursor c{text};
      c.day_name(false) && c.literal(", ")) {  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    day = c.digits(2);
    if (!c.literal(" ") || (month = c.month()) == 0 || !c.literal(" ")) return std::nullopt;
    year = c.digits(4);
    if (!c.literal(" ") || (seconds = c.time_of_day()) < 0 || !c.literal(" GMT") || !c.at_end())
      return std::nullopt;
  } else if (DateCursor r{text};
             r.day_name(true) && r.literal(", ")) {  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    day = r.digits(2);
    if (!r.literal("-") || (month = r.month()) == 0 || !r.literal("-")) return std::nullopt;
    const long yy = r.digits(2);
    if (yy < 0 || !r.literal(" ") || (seconds = r.time_of_day()) < 0 || !r.literal(" GMT") ||
        !r.at_end()) {
      return std::nullopt;
    }
    // A two-digit year more than 50 years in the future means the past century (RFC 9110).
    const int this_year = static_cast<int>(year_month_day{floor<days>(now)}.year());
    year = 2000 + yy;
    if (year > this_year + 50) year -= 100;
  } else if (DateCursor a{text};
             a.day_name(false) && a.literal(" ")) {  // asctime: Sun Nov  6 08:49:37 1994
    if ((month = a.month()) == 0 || !a.literal(" ")) return std::nullopt;
    day = a.literal(" ") ? a.digits(1) : a.digits(2);
    if (!a.literal(" ") || (seconds = a.time_of_day()) < 0 || !a.literal(" ")) return std::nullopt;
    year = a.digits(4);
    if (!a.at_end()) return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (day < 1 || year < 0) return std::nullopt;
  const year_month_day date{std::chrono::year{static_cast<int>(year)}, std::chrono::month{month},
                            std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;
  return sys_days{date} + std::chrono::seconds{seconds};
}

}  // namespace detail

inline std::chrono::milliseconds parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) noexcept {
  using std::chrono::milliseconds;
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return milliseconds{0};
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // delay-seconds; capped at ten years so the arithmetic cannot overflow.
    constexpr std::int64_t cap = 10LL * 366 * 24 * 3600;
    std::int64_t seconds = 0;
    for (const char c : value) {
      seconds = seconds * 10 + (c - '0');
      if (seconds > cap) return std::chrono::duration_cast<milliseconds>(std::chrono::seconds{cap});
    }
    return std::chrono::duration_cast<milliseconds>(std::chrono::seconds{seconds});
  }
  const auto when = detail::parse_http_date(value, now);
  // Compare in whole seconds: a date past 2262 does not fit system_clock's nanoseconds.
  const auto now_seconds = std::chrono::floor<std::chrono::seconds>(now);
  if (!when || *when <= now_seconds) return milliseconds{0};
  constexpr std::chrono::seconds cap{10LL * 366 * 24 * 3600};
  const std::chrono::seconds ahead = *when - now_seconds;
  if (ahead > cap) return std::chrono::duration_cast<milliseconds>(cap);
  const auto wait = std::chrono::ceil<milliseconds>(ahead - (now - now_seconds));
  return wait > milliseconds{0} ? wait : milliseconds{0};
}

}  // namespace bulwark::http
