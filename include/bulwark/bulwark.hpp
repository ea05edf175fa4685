// bulwark/bulwark.hpp — the whole core of bulwark: every policy, the pipeline, clocks and errors.
// Standard library only: it never pulls in cpp-httplib or fmt (see http.hpp and format.hpp).
//
//   #include <bulwark/bulwark.hpp>
//   bulwark::Pipeline pipeline{bulwark::CircuitBreaker{}, bulwark::RetryStrategy{}};
//   auto user = pipeline.execute([&] { return fetch_user(123); });
#pragma once

#include "bulkhead.hpp"
#include "circuit_breaker.hpp"
#include "clock.hpp"
#include "connection_pool.hpp"
#include "context.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "pipeline.hpp"
#include "rate_limiter.hpp"
#include "retry.hpp"
#include "version.hpp"
