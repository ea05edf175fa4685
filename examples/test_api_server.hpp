// examples/test_api_server.hpp — a real HTTP test API with fault injection, on 127.0.0.1 only.
//
// Shared by examples/test_api.cpp (the stand-alone server), tests/http/*_test.cpp (started
// in-process on an ephemeral port) and benchmarks/http_load.cpp:
//
//   test_api::Server server{{.port = 0}};                        // 0: the kernel picks a port
//   server.set_faults({.burst_503 = 2});                         // the next two requests fail
//   httplib::Client{"127.0.0.1", server.port()}.Get("/users/123");
//   server.stats().requests;                                     // API requests seen so far
//
// Endpoints (faults apply to the API endpoints, never to /admin):
//   GET  /users/{id}        {"id":123,"name":"User 123","email":"user123@example.com"}
//   POST /users             201, echoes the request body
//   GET  /status/{code}     an empty response with that status
//   GET  /echo/headers      the request headers, one "Name: value" line each (text/plain)
//   POST /admin/faults?...  changes the fault mode: failure_rate, burst_503, burst_429,
//                           retry_after, latency_ms, stall_ms, reset_rate, rate_429, stall_rate
//                           (unnamed ones are kept)
//   POST /admin/reset       clears every fault and counter
//   GET  /admin/stats       {"requests":N,"connections":N,"injected":N,"stalled":N}
// Per-request query parameters on the API endpoints: status=N (answer N), retry_after=V (sent
// verbatim as Retry-After), latency_ms=N, stall_ms=N, reset=1 (close the connection mid-body),
// bytes=N (pad the body to N bytes), chunked=1 (no Content-Length; chunked transfer encoding).
#pragma once

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

namespace test_api {

/// The fault mode applied to every API request, in this order: latency_ms, stall_ms (for a
/// stall_rate share), burst_429, rate_429, burst_503, failure_rate, reset_rate. Each rate is an
/// independent draw per request, so with several on the shares compound (a stalled request can
/// still be answered 503 afterwards).
struct Faults {
  double failure_rate = 0.0;  ///< Share of requests answered 503 or 500 at random, in [0, 1].
  int burst_503 = 0;          ///< The next N requests are answered 503.
  int burst_429 = 0;          ///< The next N requests are answered 429 with Retry-After.
  int retry_after = 1;        ///< Retry-After (seconds) sent with burst_429's answers.
  int latency_ms = 0;         ///< Added before every answer.
  int stall_ms = 0;           ///< Sleep before answering (meant to exceed client timeouts).
  double reset_rate = 0.0;    ///< Share of answers cut mid-body (connection closed), in [0, 1].
  double rate_429 = 0.0;      ///< Share of requests answered 429 with Retry-After, in [0, 1].
  double stall_rate = 1.0;    ///< Share of requests that sleep stall_ms, in [0, 1] (1: all).
};

/// Counters since start or the last reset().
struct Stats {
  std::uint64_t requests = 0;     ///< API requests received (admin requests not counted).
  std::uint64_t connections = 0;  ///< Distinct client connections that sent an API request.
  std::uint64_t injected = 0;     ///< Requests answered with an injected fault.
  std::uint64_t stalled = 0;      ///< Requests that slept stall_ms (not counted in injected).
};

/// Where and how to listen.
struct Options {
  int port = 0;                   ///< 0: pick a free port (see Server::port()).
  std::size_t threads = 64;       ///< Worker threads; each keep-alive connection holds one.
  int keep_alive_timeout_s = 10;  ///< Idle keep-alive connections are closed after this.
  std::string cert_path{};        ///< PEM certificate: serve HTTPS when set (with key_path).
  std::string key_path{};         ///< PEM private key for cert_path.
};

/// The test API server, listening on 127.0.0.1 from construction until stop() or destruction.
/// Thread-safe: set_faults, stats and reset may be called while requests are served.
class Server {
 public:
  explicit Server(Options options = {}) {
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    if (!options.cert_path.empty()) {
      server_ =
          std::make_unique<httplib::SSLServer>(options.cert_path.c_str(), options.key_path.c_str());
    } else {
      server_ = std::make_unique<httplib::Server>();
    }
#else
    server_ = std::make_unique<httplib::Server>();
#endif
    if (!server_->is_valid())
      throw std::runtime_error("test_api: cannot create the server (bad certificate?)");
    const std::size_t threads = options.threads;
    server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server_->set_tcp_nodelay(true);  // headers and body go out in separate writes
    server_->set_keep_alive_max_count(1'000'000);
    server_->set_keep_alive_timeout(options.keep_alive_timeout_s);
    // cpp-httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled into Debian's
    // library). A burst of reconnects overflows it, and a connection the kernel drops from the
    // accept queue is never served: its request is lost without the server seeing it. So the
    // listening socket is captured here and listens again, deeper, once bound.
    server_->set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      listen_socket_ = sock;
    });
    install_routes();
    if (options.port == 0) {
      port_ = server_->bind_to_any_port("127.0.0.1");
    } else {
      port_ = server_->bind_to_port("127.0.0.1", options.port) ? options.port : -1;
    }
    if (port_ <= 0)
      throw std::runtime_error("test_api: cannot bind 127.0.0.1:" + std::to_string(options.port));
    if (listen_socket_ != INVALID_SOCKET) ::listen(listen_socket_, kListenBacklog);
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server() { stop(); }

  /// The port the server listens on.
  [[nodiscard]] int port() const noexcept { return port_; }

  /// "http://127.0.0.1:PORT" (or https).
  [[nodiscard]] std::string base_url() const {
    return std::string(tls() ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
  }

  /// Stops listening, wakes stalled handlers and joins every worker. Idempotent.
  void stop() {
    {
      std::scoped_lock lock{sleep_mutex_};
      stopping_ = true;
    }
    sleep_cv_.notify_all();
    if (thread_.joinable()) {
      server_->stop();
      thread_.join();
    }
  }

  /// Replaces the fault mode.
  void set_faults(const Faults& faults) {
    failure_rate_.store(faults.failure_rate);
    burst_503_.store(faults.burst_503);
    burst_429_.store(faults.burst_429);
    retry_after_.store(faults.retry_after);
    latency_ms_.store(faults.latency_ms);
    stall_ms_.store(faults.stall_ms);
    reset_rate_.store(faults.reset_rate);
    rate_429_.store(faults.rate_429);
    stall_rate_.store(faults.stall_rate);
  }

  /// The current fault mode (bursts show what is left of them).
  [[nodiscard]] Faults faults() const {
    return Faults{failure_rate_.load(), burst_503_.load(),  burst_429_.load(),
                  retry_after_.load(),  latency_ms_.load(), stall_ms_.load(),
                  reset_rate_.load(),   rate_429_.load(),   stall_rate_.load()};
  }

  /// Counters since start or the last reset().
  [[nodiscard]] Stats stats() const {
    return Stats{requests_.load(), connections_.load(), injected_.load(), stalled_.load()};
  }

  /// Clears every fault and counter.
  void reset() {
    set_faults({});
    requests_.store(0);
    connections_.store(0);
    injected_.store(0);
    stalled_.store(0);
    for (auto& word : ports_seen_) word.store(0);
  }

 private:
  // One bit per client port: all clients are on loopback, so a port names a connection while it
  // is open. Lock-free, fixed memory (8 KiB), one fetch_or per request.
  static constexpr std::size_t kPortWords = 65536 / 64;
  static constexpr int kListenBacklog = 1024;  // capped by net.core.somaxconn

  [[nodiscard]] bool tls() const noexcept {
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    return dynamic_cast<httplib::SSLServer*>(server_.get()) != nullptr;
#else
    return false;
#endif
  }

  static int int_param(const httplib::Request& req, const char* name, int fallback) {
    if (!req.has_param(name)) return fallback;
    try {
      return std::stoi(req.get_param_value(name));
    } catch (const std::exception&) {
      return fallback;
    }
  }

  static double double_param(const httplib::Request& req, const char* name, double fallback) {
    if (!req.has_param(name)) return fallback;
    try {
      return std::stod(req.get_param_value(name));
    } catch (const std::exception&) {
      return fallback;
    }
  }

  static double uniform() {
    thread_local std::minstd_rand engine{std::random_device{}()};
    return std::uniform_real_distribution<double>{0.0, 1.0}(engine);
  }

  static bool take_one(std::atomic<int>& burst) {
    int left = burst.load();
    while (left > 0 && !burst.compare_exchange_weak(left, left - 1)) {
    }
    return left > 0;
  }

  // Sleeps, but wakes at once when the server stops (so stop() never waits out a stall).
  void sleep_ms(int ms) {
    if (ms <= 0) return;
    std::unique_lock lock{sleep_mutex_};
    sleep_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
  }

  void count(const httplib::Request& req) {
    requests_.fetch_add(1);
    const auto port = static_cast<std::size_t>(req.remote_port) & 0xFFFF;
    const std::uint64_t bit = std::uint64_t{1} << (port % 64);
    if ((ports_seen_[port / 64].fetch_or(bit) & bit) == 0) connections_.fetch_add(1);
  }

  // Applies the global fault mode and the request's own fault parameters. Returns true when the
  // response was produced here (a fault); false when the handler should answer normally.
  bool inject(const httplib::Request& req, httplib::Response& res) {
    count(req);
    sleep_ms(latency_ms_.load() + int_param(req, "latency_ms", 0));
    const int stall = stall_ms_.load();
    const double stall_rate = stall_rate_.load();
    const int stall_now = (stall > 0 && (stall_rate >= 1.0 || uniform() < stall_rate) ? stall : 0) +
                          int_param(req, "stall_ms", 0);
    if (stall_now > 0) {
      stalled_.fetch_add(1);
      sleep_ms(stall_now);
    }
    if (req.has_param("retry_after"))
      res.set_header("Retry-After", req.get_param_value("retry_after"));
    if (req.has_param("status")) {
      res.status = int_param(req, "status", 500);
      res.set_content("{\"error\":\"requested status\"}", "application/json");
      injected_.fetch_add(1);
      return true;
    }
    if (take_one(burst_429_)) {
      res.status = 429;
      res.set_header("Retry-After", std::to_string(retry_after_.load()));
      res.set_content("{\"error\":\"too many requests\"}", "application/json");
      injected_.fetch_add(1);
      return true;
    }
    if (const double rate_429 = rate_429_.load(); rate_429 > 0.0 && uniform() < rate_429) {
      res.status = 429;
      res.set_header("Retry-After", std::to_string(retry_after_.load()));
      res.set_content("{\"error\":\"too many requests\"}", "application/json");
      injected_.fetch_add(1);
      return true;
    }
    const double rate = failure_rate_.load();
    int status = 0;
    if (take_one(burst_503_)) {
      status = 503;
    } else if (rate > 0.0 && uniform() < rate) {
      status = uniform() < 0.5 ? 503 : 500;
    }
    if (status != 0) {
      res.status = status;
      res.set_content("{\"error\":\"injected failure\"}", "application/json");
      injected_.fetch_add(1);
      return true;
    }
    return false;
  }

  // Sends `body`, honouring bytes=, chunked= and reset= (or the global reset_rate).
  void answer(const httplib::Request& req, httplib::Response& res, std::string body,
              const char* type) {
    const int bytes = int_param(req, "bytes", 0);
    if (bytes > 0 && static_cast<std::size_t>(bytes) > body.size())
      body.append(static_cast<std::size_t>(bytes) - body.size(), ' ');
    const double reset_rate = reset_rate_.load();
    const bool reset =
        int_param(req, "reset", 0) != 0 || (reset_rate > 0.0 && uniform() < reset_rate);
    if (reset) {
      injected_.fetch_add(1);
      // Promise the whole body, send part of it, then fail: the server closes the connection.
      auto shared = std::make_shared<std::string>(std::move(body));
      shared->append(64, ' ');
      res.set_content_provider(shared->size(), type,
                               [shared](std::size_t offset, std::size_t, httplib::DataSink& sink) {
                                 if (offset > 0) return false;
                                 sink.write(shared->data(), shared->size() / 2);
                                 return true;
                               });
      return;
    }
    if (int_param(req, "chunked", 0) != 0) {
      auto shared = std::make_shared<std::string>(std::move(body));
      res.set_chunked_content_provider(type, [shared](std::size_t offset, httplib::DataSink& sink) {
        if (offset >= shared->size()) {
          sink.done();
          return true;
        }
        const std::size_t n = std::min<std::size_t>(16 * 1024, shared->size() - offset);
        return sink.write(shared->data() + offset, n);
      });
      return;
    }
    res.set_content(std::move(body), type);
  }

  void install_routes() {
    server_->Get(R"(/users/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (inject(req, res)) return;
      const std::string id = req.matches[1];
      answer(req, res,
             "{\"id\":" + id + ",\"name\":\"User " + id + "\",\"email\":\"user" + id +
                 "@example.com\"}",
             "application/json");
    });
    server_->Post("/users", [this](const httplib::Request& req, httplib::Response& res) {
      if (inject(req, res)) return;
      res.status = 201;
      answer(req, res, req.body, "application/json");
    });
    server_->Get(R"(/status/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      count(req);
      res.status = std::stoi(req.matches[1]);
      if (req.has_param("retry_after"))
        res.set_header("Retry-After", req.get_param_value("retry_after"));
    });
    server_->Get("/echo/headers", [this](const httplib::Request& req, httplib::Response& res) {
      if (inject(req, res)) return;
      std::string out;
      for (const auto& [name, value] : req.headers) out += name + ": " + value + "\n";
      answer(req, res, std::move(out), "text/plain");
    });
    server_->Post("/admin/faults", [this](const httplib::Request& req, httplib::Response& res) {
      Faults f = faults();
      f.failure_rate = double_param(req, "failure_rate", f.failure_rate);
      f.burst_503 = int_param(req, "burst_503", f.burst_503);
      f.burst_429 = int_param(req, "burst_429", f.burst_429);
      f.retry_after = int_param(req, "retry_after", f.retry_after);
      f.latency_ms = int_param(req, "latency_ms", f.latency_ms);
      f.stall_ms = int_param(req, "stall_ms", f.stall_ms);
      f.reset_rate = double_param(req, "reset_rate", f.reset_rate);
      f.rate_429 = double_param(req, "rate_429", f.rate_429);
      f.stall_rate = double_param(req, "stall_rate", f.stall_rate);
      set_faults(f);
      res.set_content(faults_json(f), "application/json");
    });
    server_->Get("/admin/faults", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(faults_json(faults()), "application/json");
    });
    server_->Post("/admin/reset", [this](const httplib::Request&, httplib::Response& res) {
      reset();
      res.set_content("{}", "application/json");
    });
    server_->Get("/admin/stats", [this](const httplib::Request&, httplib::Response& res) {
      const Stats s = stats();
      res.set_content("{\"requests\":" + std::to_string(s.requests) +
                          ",\"connections\":" + std::to_string(s.connections) +
                          ",\"injected\":" + std::to_string(s.injected) +
                          ",\"stalled\":" + std::to_string(s.stalled) + "}",
                      "application/json");
    });
  }

  static std::string faults_json(const Faults& f) {
    return "{\"failure_rate\":" + std::to_string(f.failure_rate) +
           ",\"burst_503\":" + std::to_string(f.burst_503) +
           ",\"burst_429\":" + std::to_string(f.burst_429) +
           ",\"retry_after\":" + std::to_string(f.retry_after) +
           ",\"latency_ms\":" + std::to_string(f.latency_ms) +
           ",\"stall_ms\":" + std::to_string(f.stall_ms) +
           ",\"reset_rate\":" + std::to_string(f.reset_rate) +
           ",\"rate_429\":" + std::to_string(f.rate_429) +
           ",\"stall_rate\":" + std::to_string(f.stall_rate) + "}";
  }

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = -1;
  socket_t listen_socket_ = INVALID_SOCKET;  // set while binding, before the server thread starts

  std::atomic<double> failure_rate_{0.0};
  std::atomic<int> burst_503_{0};
  std::atomic<int> burst_429_{0};
  std::atomic<int> retry_after_{1};
  std::atomic<int> latency_ms_{0};
  std::atomic<int> stall_ms_{0};
  std::atomic<double> reset_rate_{0.0};
  std::atomic<double> rate_429_{0.0};
  std::atomic<double> stall_rate_{1.0};

  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> injected_{0};
  std::atomic<std::uint64_t> stalled_{0};
  std::array<std::atomic<std::uint64_t>, kPortWords> ports_seen_{};

  std::mutex sleep_mutex_;
  std::condition_variable sleep_cv_;
  bool stopping_ = false;
};

}  // namespace test_api
