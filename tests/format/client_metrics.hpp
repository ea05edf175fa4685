// tests/format/client_metrics.hpp — a stand-in for ResilientHttpClient::Metrics, so the format
// tests need fmt but not cpp-httplib.
#pragma once

#include <bulwark/bulwark.hpp>

namespace format_test {

/// The shape of bulwark::http::ResilientHttpClient::Metrics.
struct ClientMetrics {
  bulwark::CircuitBreakerMetrics circuit_breaker{};
  bulwark::BulkheadMetrics bulkhead{};
  bulwark::RateLimiterMetrics rate_limiter{};
  bulwark::RetryMetrics retry{};
  bulwark::ConnectionPoolMetrics pool{};
};

}  // namespace format_test
