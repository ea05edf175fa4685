// test_api — the fault-injecting test API of examples/test_api_server.hpp, as a program.
//
//   test_api [port=0] [--failure-rate R] [--burst-503 N] [--burst-429 N] [--retry-after S]
//            [--latency-ms N] [--stall-ms N] [--reset-rate R] [--threads N]
//
// Listens on 127.0.0.1 only; port 0 picks a free port. Prints "listening on 127.0.0.1:PORT"
// (flushed) once it accepts connections, then serves until SIGINT or SIGTERM. The fault mode can
// be changed at run time: curl -d '' 'http://127.0.0.1:PORT/admin/faults?failure_rate=0.3'.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "test_api_server.hpp"

namespace {

int usage(const char* argv0) {
  std::fprintf(
      stderr,
      "usage: %s [port=0] [--failure-rate R] [--burst-503 N] [--burst-429 N] [--retry-after S]\n"
      "          [--latency-ms N] [--stall-ms N] [--reset-rate R] [--threads N]\n",
      argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  test_api::Options options;
  test_api::Faults faults;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(std::string(arg) + " needs a value");
        return argv[++i];
      };
      if (arg == "--failure-rate") {
        faults.failure_rate = std::stod(value());
      } else if (arg == "--burst-503") {
        faults.burst_503 = std::stoi(value());
      } else if (arg == "--burst-429") {
        faults.burst_429 = std::stoi(value());
      } else if (arg == "--retry-after") {
        faults.retry_after = std::stoi(value());
      } else if (arg == "--latency-ms") {
        faults.latency_ms = std::stoi(value());
      } else if (arg == "--stall-ms") {
        faults.stall_ms = std::stoi(value());
      } else if (arg == "--reset-rate") {
        faults.reset_rate = std::stod(value());
      } else if (arg == "--threads") {
        options.threads = static_cast<std::size_t>(std::stoul(value()));
      } else if (arg == "-h" || arg == "--help") {
        return usage(argv[0]);
      } else if (!arg.empty() && arg[0] != '-') {
        options.port = std::stoi(std::string(arg));
      } else {
        return usage(argv[0]);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "test_api: bad arguments: %s\n", e.what());
    return usage(argv[0]);
  }

  // Block the stop signals in every thread (the server's workers inherit the mask), then wait
  // for one here. SIGPIPE is ignored: a client closing mid-response must not kill the server.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  try {
    test_api::Server server{options};
    server.set_faults(faults);
    std::printf("listening on 127.0.0.1:%d\n", server.port());
    std::fflush(stdout);
    int received = 0;
    sigwait(&stop_signals, &received);
    std::fprintf(stderr, "test_api: signal %d, stopping\n", received);
    server.stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "test_api: %s\n", e.what());
    return 1;
  }
  return 0;
}
