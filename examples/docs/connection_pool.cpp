// docs/connection_pool.md: a pool of at most two connections made by a factory. Returned
// connections are reused; one whose call threw is closed; an idle one past idle_timeout is
// replaced; as a pipeline's last stage the pool hands the connection to the callable. A
// ManualClock stands in for the steady clock.
#include <bulwark/bulwark.hpp>

#include <chrono>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>

// Stands in for a socket: opened by the factory, closed by its destructor.
struct Connection {
  int id;
  std::string send(const std::string& request) const {
    return "#" + std::to_string(id) + " answered " + request;
  }
};

void print(const bulwark::ConnectionPoolMetrics& m) {
  std::cout << "open " << m.open << ", idle " << m.idle << ", created " << m.created << ", reused "
            << m.reused << ", discarded " << m.discarded << '\n';
}

int main() {
  using namespace std::chrono_literals;
  bulwark::ManualClock clock;
  int opened = 0;
  bulwark::ConnectionPool<Connection, bulwark::ManualClock> pool{
      [&] { return Connection{++opened}; },
      {.max_connections = 2, .idle_timeout = 4s, .max_lifetime = 600s, .acquire_timeout = 10s},
      clock};

  auto send = [](Connection& c) { return c.send("GET /users/123"); };
  std::cout << pool.execute(send) << '\n';  // opens #1
  std::cout << pool.execute(send) << '\n';  // reuses #1

  try {
    pool.execute([](Connection&) -> std::string { throw std::runtime_error("reset by peer"); });
  } catch (const std::runtime_error&) {
    std::cout << "the call threw: its connection is closed, not reused\n";
  }
  {
    auto lease = pool.acquire();  // opens #2; returned when the lease ends
    std::cout << "leased #" << lease->id << '\n';
  }
  clock.advance(5s);                        // #2 has been idle longer than idle_timeout
  std::cout << pool.execute(send) << '\n';  // closes #2, opens #3
  print(pool.metrics());

  // The last stage of a pipeline: the callable takes the leased connection.
  bulwark::Pipeline pipeline{bulwark::CircuitBreaker{}, std::ref(pool)};
  std::cout << pipeline.execute([](Connection& c) { return c.send("GET /health"); }) << '\n';
}
