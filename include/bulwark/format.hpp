// bulwark/format.hpp — fmt formatters for bulwark's states and metrics, and Prometheus text.
// Needs fmt (9.1 or later); never includes cpp-httplib, yet formats the HTTP client's Metrics.
//
//   #include <bulwark/format.hpp>
//   fmt::print("{}\n", breaker.metrics());   // CircuitBreakerMetrics{state=closed failures=0 ...}
//   fmt::print("{}\n", pipeline.metrics());  // (RateLimiterMetrics{...}, monostate, ...)
//   std::string page = bulwark::to_prometheus(client.metrics(), "upstream");
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <ranges>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>  // std::tuple, so a Pipeline's metrics() formats
#include <fmt/std.h>     // std::monostate ("monostate"), a Pipeline stage without metrics

#include "bulkhead.hpp"
#include "circuit_breaker.hpp"
#include "clock.hpp"
#include "connection_pool.hpp"
#include "rate_limiter.hpp"
#include "retry.hpp"

namespace bulwark {

/// Constant labels added to every sample of to_prometheus, as {name, value} pairs in order.
/// Names follow Prometheus' label rules ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", not
/// "state"); values may hold any text and are escaped.
using PrometheusLabels = std::vector<std::pair<std::string, std::string>>;

/// Renders `metrics` in the Prometheus text exposition format (version 0.0.4): for each metric a
/// `# HELP` and a `# TYPE` line, then its samples, every line ending in '\n'. Every metric name
/// starts with `prefix` and '_'. Counters end in `_total`; the breaker's state is one gauge,
/// `<prefix>_circuit_state{state="..."}`, 1 for the current state and 0 for the other two.
///
/// `metrics` is one of the five metrics structs; or any struct with some of the members
/// `circuit_breaker`, `bulkhead`, `rate_limiter`, `retry`, `pool` of those types, such as
/// http::ResilientHttpClient::Metrics; or a Pipeline's metrics() tuple, whose std::monostate
/// elements are skipped and which may hold each metrics type once. The breaker's time points are
/// not exported: they are steady-clock readings, not Unix times. The metric names:
///
///   gauges    <prefix>_circuit_state{state="closed|open|half_open"}, _circuit_failures,
///             _circuit_successes, _circuit_consecutive_failures, _circuit_consecutive_successes,
///             _bulkhead_active_calls, _bulkhead_queued_calls, _bulkhead_available_slots,
///             _rate_limiter_available_tokens, _rate_limiter_max_tokens,
///             _rate_limiter_refill_tokens_per_second,
///             _pool_connections_open, _pool_connections_idle, _pool_connections_in_use
///   counters  _retry_calls_total, _retry_attempts_total, _retry_retries_total,
///             _retry_successes_after_retry_total, _retry_exhausted_total,
///             _pool_connections_created_total, _pool_connections_reused_total,
///             _pool_connections_discarded_total
///
/// Two outputs with the same prefix cannot be concatenated into one exposition (each declares its
/// metrics); give each its own prefix. Throws std::invalid_argument, naming the culprit, when
/// `prefix` is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or a label name is invalid or
/// repeated. Thread-safe (it only reads its arguments).
template <class M>
[[nodiscard]] std::string to_prometheus(const M& metrics, std::string_view prefix = "bulwark",
                                        const PrometheusLabels& labels = {});

namespace detail {  // concepts the formatters below are constrained with

/// One of bulwark's five metrics structs.
template <class T>
concept single_metrics = std::same_as<T, CircuitBreakerMetrics> ||
    std::same_as<T, BulkheadMetrics> || std::same_as<T, RateLimiterMetrics> ||
    std::same_as<T, RetryMetrics> || std::same_as<T, ConnectionPoolMetrics>;

// For each member name: `names_x` when T has a data member called x (of any type), `holds_x`
// when that member is the right metrics struct. A type naming one with another type is not ours.
template <class T>
concept names_circuit_breaker = requires(const T& m) {
  m.circuit_breaker;
};
template <class T>
concept holds_circuit_breaker = names_circuit_breaker<T> &&
    std::same_as<std::remove_cvref_t<decltype(std::declval<const T&>().circuit_breaker)>,
                 CircuitBreakerMetrics>;
template <class T>
concept names_bulkhead = requires(const T& m) {
  m.bulkhead;
};
template <class T>
concept holds_bulkhead = names_bulkhead<T> &&
    std::same_as<std::remove_cvref_t<decltype(std::declval<const T&>().bulkhead)>, BulkheadMetrics>;
template <class T>
concept names_rate_limiter = requires(const T& m) {
  m.rate_limiter;
};
template <class T>
concept holds_rate_limiter = names_rate_limiter<T> &&
    std::same_as<std::remove_cvref_t<decltype(std::declval<const T&>().rate_limiter)>,
                 RateLimiterMetrics>;
template <class T>
concept names_retry = requires(const T& m) {
  m.retry;
};
template <class T>
concept holds_retry = names_retry<T> &&
    std::same_as<std::remove_cvref_t<decltype(std::declval<const T&>().retry)>, RetryMetrics>;
template <class T>
concept names_pool = requires(const T& m) {
  m.pool;
};
template <class T>
concept holds_pool =
    names_pool<T> && std::same_as<std::remove_cvref_t<decltype(std::declval<const T&>().pool)>,
                                  ConnectionPoolMetrics>;

template <class T>
concept holds_any_metrics = holds_circuit_breaker<T> || holds_bulkhead<T> ||
    holds_rate_limiter<T> || holds_retry<T> || holds_pool<T>;
template <class T>
concept named_members_match = names_circuit_breaker<T>
== holds_circuit_breaker<T>&& names_bulkhead<T> == holds_bulkhead<T>&& names_rate_limiter<T> ==
    holds_rate_limiter<T>&& names_retry<T> == holds_retry<T>&& names_pool<T> == holds_pool<T>;
template <class T>
concept tuple_like = requires {
  std::tuple_size<T>::value;
};

/// A struct gathering bulwark metrics by name, as http::ResilientHttpClient::Metrics does: it has
/// at least one of the members circuit_breaker, bulkhead, rate_limiter, retry, pool, and each of
/// those it has is the matching metrics struct. Ranges and tuple-likes are left to fmt.
template <class T>
concept metrics_aggregate = std::is_class_v<T> && !std::ranges::range<T> && !tuple_like<T> &&
                            holds_any_metrics<T> && named_members_match<T>;

/// "closed", "open", "half_open" ("unknown" for a value outside the enum).
constexpr std::string_view state_name(CircuitState state) noexcept { return to_string(state); }

/// What the metrics formatters share: an empty format spec only ("{}"), and output through
/// format_fields (defined at the bottom of this file).
template <class T>
struct metrics_formatter {
  constexpr auto parse(fmt::format_parse_context& ctx) -> decltype(ctx.begin()) {
    if (ctx.begin() != ctx.end() && *ctx.begin() != '}') {
      throw fmt::format_error("bulwark metrics take no format spec");
    }
    return ctx.begin();
  }
  template <class FormatContext>
  auto format(const T& metrics, FormatContext& ctx) const -> decltype(ctx.out());
};

}  // namespace detail
}  // namespace bulwark

/// CircuitState as `closed`, `open` or `half_open`; takes string specs, e.g. "{:>9}". Not quoted
/// inside a range: the name is held, not inherited, so fmt sees no debug format to turn on.
template <>
struct fmt::formatter<bulwark::CircuitState> {
  constexpr auto parse(fmt::format_parse_context& ctx) -> decltype(ctx.begin()) {
    return name_.parse(ctx);
  }
  template <class FormatContext>
  auto format(bulwark::CircuitState state, FormatContext& ctx) const -> decltype(ctx.out()) {
    return name_.format(bulwark::detail::state_name(state), ctx);
  }

 private:
  fmt::formatter<fmt::string_view> name_;
};

/// `CircuitBreakerMetrics{state=closed failures=0 successes=12 consecutive_failures=0
/// consecutive_successes=12 last_failure=none last_state_change=@86400.000s}`. The time points
/// are readings of the clock that made them, as seconds since its epoch to the millisecond
/// ("@" marks a reading, not a duration): no "ago", because the struct does not say which clock
/// made them (ManualClock's share SteadyClock's type), and output stays deterministic.
template <>
struct fmt::formatter<bulwark::CircuitBreakerMetrics>
    : bulwark::detail::metrics_formatter<bulwark::CircuitBreakerMetrics> {};

/// `BulkheadMetrics{active_count=2 queued_count=1 available_slots=8}`.
template <>
struct fmt::formatter<bulwark::BulkheadMetrics>
    : bulwark::detail::metrics_formatter<bulwark::BulkheadMetrics> {};

/// `RateLimiterMetrics{available_tokens=59 max_tokens=60 refill_rate=0.8333333333333334/s}`.
template <>
struct fmt::formatter<bulwark::RateLimiterMetrics>
    : bulwark::detail::metrics_formatter<bulwark::RateLimiterMetrics> {};

/// `RetryMetrics{calls=3 attempts=5 retries=2 successes_after_retry=1 exhausted=0}`.
template <>
struct fmt::formatter<bulwark::RetryMetrics>
    : bulwark::detail::metrics_formatter<bulwark::RetryMetrics> {};

/// `ConnectionPoolMetrics{open=2 idle=1 in_use=1 created=3 reused=7 discarded=1}`.
template <>
struct fmt::formatter<bulwark::ConnectionPoolMetrics>
    : bulwark::detail::metrics_formatter<bulwark::ConnectionPoolMetrics> {};

/// A struct of named metrics (http::ResilientHttpClient::Metrics, or any detail::metrics_aggregate)
/// as `{circuit_breaker={state=closed ...} bulkhead={...} rate_limiter={...} retry={...}
/// pool={...}}`, members present only, always in that order.
template <class T>
requires bulwark::detail::metrics_aggregate<T>
struct fmt::formatter<T, char> : bulwark::detail::metrics_formatter<T> {
};

namespace bulwark {
namespace detail {

// ---- fmt: the fields of each metrics struct, "name=value" separated by spaces ----

/// Writes a clock reading as "@<seconds>.<milliseconds>s" since the clock's epoch.
template <class Out>
Out format_reading(Out out, SteadyClock::time_point when) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch());
  const auto count = ms.count();
  // unsigned: the magnitude of the most negative count still fits.
  const std::uint64_t magnitude =
      count < 0 ? 0 - static_cast<std::uint64_t>(count) : static_cast<std::uint64_t>(count);
  return fmt::format_to(out, "@{}{}.{:03}s", count < 0 ? "-" : "", magnitude / 1000,
                        magnitude % 1000);
}

template <class Out>
Out format_fields(Out out, const CircuitBreakerMetrics& m) {
  out = fmt::format_to(out,
                       "state={} failures={} successes={} consecutive_failures={} "
                       "consecutive_successes={} last_failure=",
                       m.state, m.failures, m.successes, m.consecutive_failures,
                       m.consecutive_successes);
  out =
      m.last_failure_time ? format_reading(out, *m.last_failure_time) : fmt::format_to(out, "none");
  out = fmt::format_to(out, " last_state_change=");
  return format_reading(out, m.last_state_change);
}

template <class Out>
Out format_fields(Out out, const BulkheadMetrics& m) {
  return fmt::format_to(out, "active_count={} queued_count={} available_slots={}", m.active_count,
                        m.queued_count, m.available_slots);
}

template <class Out>
Out format_fields(Out out, const RateLimiterMetrics& m) {
  return fmt::format_to(out, "available_tokens={} max_tokens={} refill_rate={}/s",
                        m.available_tokens, m.max_tokens, m.refill_rate);
}

template <class Out>
Out format_fields(Out out, const RetryMetrics& m) {
  return fmt::format_to(out,
                        "calls={} attempts={} retries={} successes_after_retry={} exhausted={}",
                        m.calls, m.attempts, m.retries, m.successes_after_retry, m.exhausted);
}

template <class Out>
Out format_fields(Out out, const ConnectionPoolMetrics& m) {
  return fmt::format_to(out, "open={} idle={} in_use={} created={} reused={} discarded={}", m.open,
                        m.idle, m.in_use, m.created, m.reused, m.discarded);
}

constexpr std::string_view metrics_name(const CircuitBreakerMetrics*) {
  return "CircuitBreakerMetrics";
}
constexpr std::string_view metrics_name(const BulkheadMetrics*) { return "BulkheadMetrics"; }
constexpr std::string_view metrics_name(const RateLimiterMetrics*) { return "RateLimiterMetrics"; }
constexpr std::string_view metrics_name(const RetryMetrics*) { return "RetryMetrics"; }
constexpr std::string_view metrics_name(const ConnectionPoolMetrics*) {
  return "ConnectionPoolMetrics";
}

/// Calls visit(name, member) for each named member T has, in the order of the HTTP client's
/// Metrics: circuit_breaker, bulkhead, rate_limiter, retry, pool.
template <metrics_aggregate T, class Visit>
void for_each_member(const T& m, Visit&& visit) {
  if constexpr (holds_circuit_breaker<T>)
    visit(std::string_view{"circuit_breaker"}, m.circuit_breaker);
  if constexpr (holds_bulkhead<T>) visit(std::string_view{"bulkhead"}, m.bulkhead);
  if constexpr (holds_rate_limiter<T>) visit(std::string_view{"rate_limiter"}, m.rate_limiter);
  if constexpr (holds_retry<T>) visit(std::string_view{"retry"}, m.retry);
  if constexpr (holds_pool<T>) visit(std::string_view{"pool"}, m.pool);
}

template <class T>
template <class FormatContext>
auto metrics_formatter<T>::format(const T& metrics, FormatContext& ctx) const
    -> decltype(ctx.out()) {
  auto out = ctx.out();
  if constexpr (single_metrics<T>) {
    out = fmt::format_to(out, "{}{{", metrics_name(static_cast<const T*>(nullptr)));
    out = format_fields(out, metrics);
  } else {
    *out++ = '{';
    bool first = true;
    for_each_member(metrics, [&](std::string_view name, const auto& member) {
      out = fmt::format_to(out, "{}{}={{", first ? "" : " ", name);
      out = format_fields(out, member);
      *out++ = '}';
      first = false;
    });
  }
  *out++ = '}';
  return out;
}

// ---- Prometheus text exposition ----

/// [a-zA-Z_:][a-zA-Z0-9_:]* (colons: metric names only).
constexpr bool is_prometheus_name(std::string_view name, bool colons) noexcept {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colons && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

/// Escapes a label value (backslash, double quote, newline) or, with `quote` false, HELP text
/// (backslash, newline), as the text format requires.
inline void append_escaped(std::string& out, std::string_view text, bool quote) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

/// Appends metric families to one exposition. Every name it writes is prefix + "_" + a suffix.
class PrometheusWriter {
 public:
  PrometheusWriter(std::string_view prefix, const PrometheusLabels& labels) : prefix_(prefix) {
    if (!is_prometheus_name(prefix, true)) {
      std::string shown;
      append_escaped(shown, prefix, true);
      throw std::invalid_argument(
          fmt::format("to_prometheus: prefix \"{}\" is not a valid metric name "
                      "(want [a-zA-Z_:][a-zA-Z0-9_:]*)",
                      shown));
    }
    for (std::size_t i = 0; i < labels.size(); ++i) {
      const std::string& name = labels[i].first;
      std::string shown;
      append_escaped(shown, name, true);
      if (!is_prometheus_name(name, false) || name.starts_with("__")) {
        throw std::invalid_argument(
            fmt::format("to_prometheus: label name \"{}\" is not valid "
                        "(want [a-zA-Z_][a-zA-Z0-9_]*, not starting with \"__\")",
                        shown));
      }
      if (name == "state") {
        throw std::invalid_argument(
            "to_prometheus: label name \"state\" is taken by <prefix>_circuit_state");
      }
      for (std::size_t j = 0; j < i; ++j) {
        if (labels[j].first == name) {
          throw std::invalid_argument(
              fmt::format("to_prometheus: label name \"{}\" is given twice", shown));
        }
      }
      if (!labels_.empty()) labels_ += ',';
      labels_ += name;
      labels_ += "=\"";
      append_escaped(labels_, labels[i].second, true);
      labels_ += '"';
    }
  }

  /// One gauge or counter family with its single sample.
  template <class Value>
  void gauge(std::string_view suffix, std::string_view help, Value value) {
    family(suffix, "gauge", help);
    sample(suffix, {}, value);
  }
  template <class Value>
  void counter(std::string_view suffix, std::string_view help, Value value) {
    family(suffix, "counter", help);
    sample(suffix, {}, value);
  }

  void add(const CircuitBreakerMetrics& m) {
    family("circuit_state", "gauge",
           "Circuit breaker state: 1 for the current state, 0 for the others.");
    for (const auto state : {CircuitState::closed, CircuitState::open, CircuitState::half_open}) {
      sample("circuit_state", fmt::format("state=\"{}\"", state), m.state == state ? 1 : 0);
    }
    gauge("circuit_failures", "Failures within the circuit breaker's rolling window.", m.failures);
    gauge("circuit_successes", "Successes within the circuit breaker's rolling window.",
          m.successes);
    gauge("circuit_consecutive_failures", "Failures since the circuit breaker's last success.",
          m.consecutive_failures);
    gauge("circuit_consecutive_successes", "Successes since the circuit breaker's last failure.",
          m.consecutive_successes);
  }
  void add(const BulkheadMetrics& m) {
    gauge("bulkhead_active_calls", "Bulkhead slots taken by running calls.", m.active_count);
    gauge("bulkhead_queued_calls", "Calls waiting in the bulkhead's queue for a slot.",
          m.queued_count);
    gauge("bulkhead_available_slots", "Free bulkhead slots.", m.available_slots);
  }
  void add(const RateLimiterMetrics& m) {
    gauge("rate_limiter_available_tokens", "Whole tokens in the rate limiter's bucket.",
          m.available_tokens);
    gauge("rate_limiter_max_tokens", "Capacity of the rate limiter's bucket (burst).",
          m.max_tokens);
    gauge("rate_limiter_refill_tokens_per_second",
          "Tokens added to the rate limiter's bucket per second.", m.refill_rate);
  }
  void add(const RetryMetrics& m) {
    counter("retry_calls_total", "Calls made through the retry strategy.", m.calls);
    counter("retry_attempts_total", "Attempts made by the retry strategy, first ones included.",
            m.attempts);
    counter("retry_retries_total", "Attempts beyond the first of their call.", m.retries);
    counter("retry_successes_after_retry_total", "Calls that succeeded after at least one retry.",
            m.successes_after_retry);
    counter("retry_exhausted_total", "Calls that failed on their last allowed attempt.",
            m.exhausted);
  }
  void add(const ConnectionPoolMetrics& m) {
    gauge("pool_connections_open", "Connections open now: idle or in use.", m.open);
    gauge("pool_connections_idle", "Open connections waiting in the pool to be reused.", m.idle);
    gauge("pool_connections_in_use", "Open connections lent out.", m.in_use);
    counter("pool_connections_created_total", "Connections the pool opened.", m.created);
    counter("pool_connections_reused_total", "Leases served by a connection used before.",
            m.reused);
    counter("pool_connections_discarded_total",
            "Connections the pool closed: stale, failed or discarded.", m.discarded);
  }

  void add(std::monostate) {}  // a Pipeline stage without metrics

  [[nodiscard]] std::string take() && { return std::move(out_); }

 private:
  void family(std::string_view suffix, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP {}_{} ", prefix_, suffix);
    append_escaped(out_, help, false);
    fmt::format_to(std::back_inserter(out_), "\n# TYPE {}_{} {}\n", prefix_, suffix, type);
  }

  // One sample line: name, labels (the constant ones, then `extra`), value. Integers are written
  // exactly (as a double they would round above 2^53); doubles shortest; NaN and +Inf as Go reads
  // them.
  template <class Value>
  void sample(std::string_view suffix, std::string_view extra, Value value) {
    fmt::format_to(std::back_inserter(out_), "{}_{}", prefix_, suffix);
    if (!labels_.empty() || !extra.empty()) {
      fmt::format_to(std::back_inserter(out_), "{{{}{}{}}}", labels_,
                     !labels_.empty() && !extra.empty() ? "," : "", extra);
    }
    out_ += ' ';
    std::string_view special;  // fmt would write "nan" and "inf"
    if constexpr (std::is_floating_point_v<Value>) {
      if (std::isnan(value)) special = "NaN";
      if (std::isinf(value)) special = value > 0 ? "+Inf" : "-Inf";
    }
    if (special.empty()) {
      fmt::format_to(std::back_inserter(out_), "{}", value);
    } else {
      out_ += special;
    }
    out_ += '\n';
  }

  std::string_view prefix_;
  std::string labels_;  // rendered constant labels: name="value",...
  std::string out_;
};

template <class T>
inline constexpr bool is_exportable_tuple = false;
template <class... Ts>
inline constexpr bool is_exportable_tuple<std::tuple<Ts...>> =
    (... && (single_metrics<Ts> || std::same_as<Ts, std::monostate>));

template <class T, class... Ts>
constexpr std::size_t count_of() {
  return (std::size_t{0} + ... + (std::is_same_v<T, Ts> ? 1 : 0));
}
template <class T>
inline constexpr bool has_repeated_metrics = false;
template <class... Ts>
inline constexpr bool has_repeated_metrics<std::tuple<Ts...>> =
    count_of<CircuitBreakerMetrics, Ts...>() > 1 || count_of<BulkheadMetrics, Ts...>() > 1 ||
    count_of<RateLimiterMetrics, Ts...>() > 1 || count_of<RetryMetrics, Ts...>() > 1 ||
    count_of<ConnectionPoolMetrics, Ts...>() > 1;

}  // namespace detail

template <class M>
std::string to_prometheus(const M& metrics, std::string_view prefix,
                          const PrometheusLabels& labels) {
  static_assert(
      detail::single_metrics<M> || detail::metrics_aggregate<M> || detail::is_exportable_tuple<M>,
      "to_prometheus takes a bulwark metrics struct, a struct with some of the members "
      "circuit_breaker, bulkhead, rate_limiter, retry, pool (such as "
      "http::ResilientHttpClient::Metrics), or a Pipeline's metrics() tuple");
  static_assert(!detail::has_repeated_metrics<M>,
                "to_prometheus cannot export a tuple holding one metrics type twice: "
                "their metric names would clash; export each with its own prefix");
  detail::PrometheusWriter writer{prefix, labels};
  if constexpr (detail::single_metrics<M>) {
    writer.add(metrics);
  } else if constexpr (detail::metrics_aggregate<M>) {
    detail::for_each_member(metrics,
                            [&](std::string_view, const auto& member) { writer.add(member); });
  } else {
    std::apply([&](const auto&... element) { (writer.add(element), ...); }, metrics);
  }
  return std::move(writer).take();
}

}  // namespace bulwark
