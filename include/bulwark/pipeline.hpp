// bulwark/pipeline.hpp — composes policies around a callable; the first policy is the outermost.
//
//   bulwark::Pipeline pipeline{bulwark::Bulkhead{{.max_concurrent = 4}},
//                              std::ref(shared_breaker),            // shared with other pipelines
//                              bulwark::RetryStrategy{{.max_attempts = 3}}};
//   auto user = pipeline.execute([&] { return fetch_user(123); });
//   auto& retry = pipeline.get<bulwark::RetryStrategy<>>();
#pragma once

#include <concepts>
#include <cstddef>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "context.hpp"

namespace bulwark {

namespace detail {

template <class T>
struct unwrap_stage {
  using type = T;
};
template <class T>
struct unwrap_stage<std::reference_wrapper<T>> {
  using type = T;
};
/// The policy a stage holds: T for T and for std::reference_wrapper<T>.
template <class T>
using unwrap_stage_t = typename unwrap_stage<T>::type;

template <class T>
constexpr T& stage_ref(T& stage) noexcept {
  return stage;
}
template <class T>
constexpr T& stage_ref(std::reference_wrapper<T> stage) noexcept {
  return stage.get();
}

/// What the innermost policy calls: the user's callable, given the context when it takes one,
/// or whatever the policy passes (a ConnectionPool passes the leased connection).
template <class F>
struct user_call {
  F& f;
  // clang-format off
  decltype(auto) operator()(const Context& ctx) const
    requires std::invocable<F&, const Context&> || std::invocable<F&>
  {
    // clang-format on
    return call_with_context(f, ctx);
  }
  // clang-format off
  template <class First, class... Rest>
    requires(!std::same_as<std::remove_cvref_t<First>, Context> || sizeof...(Rest) > 0) &&
            std::invocable<F&, First, Rest...>
  decltype(auto) operator()(First&& first, Rest&&... rest) const {
    // clang-format on
    return f(std::forward<First>(first), std::forward<Rest>(rest)...);
  }
};

template <class T>
concept has_metrics = requires(const T& policy) {
  policy.metrics();
};

template <class T>
auto metrics_of(const T& policy) {
  if constexpr (has_metrics<T>) {
    return policy.metrics();
  } else {
    return std::monostate{};
  }
}

template <class T, class... Stages>
constexpr std::size_t index_of_stage() {
  constexpr bool matches[] = {std::is_same_v<T, unwrap_stage_t<Stages>>..., false};
  std::size_t found = sizeof...(Stages);
  std::size_t count = 0;
  for (std::size_t i = 0; i < sizeof...(Stages); ++i) {
    if (matches[i]) {
      found = i;
      ++count;
    }
  }
  return count == 1 ? found : sizeof...(Stages) + count;  // out of range unless exactly one
}

}  // namespace detail

/// A fixed chain of policies around a callable, resolved at compile time: no virtual call,
/// allocation or std::function on the way through. A stage may be `std::ref(policy)` to share
/// one policy between pipelines. Thread-safe as far as its policies are (bulwark's all are).
template <class... Policies>
class Pipeline {
 public:
  /// Takes the policies by value (moved in), outermost first.
  explicit(false) Pipeline(Policies... policies) : stages_(std::move(policies)...) {}

  /// Runs `f` through every policy; `f` is called as `f(ctx)` when it takes a Context, else `f()`.
  template <class F>
  decltype(auto) execute(const Context& ctx, F&& f) {
    return run<0>(ctx, f);
  }
  /// Same as execute(Context{}, f).
  template <class F>
  decltype(auto) execute(F&& f) {
    return run<0>(Context{}, f);
  }
  /// Same as execute(f).
  template <class F>
  decltype(auto) operator()(F&& f) {
    return run<0>(Context{}, f);
  }

  /// The policy at position I (outermost is 0); a std::ref stage gives the referenced policy.
  template <std::size_t I>
  [[nodiscard]] auto& get() noexcept {
    static_assert(I < sizeof...(Policies), "Pipeline::get<I>: I is past the last policy");
    return detail::stage_ref(std::get<I>(stages_));
  }
  /// The one policy of type T (held by value or by std::ref).
  template <class T>
  [[nodiscard]] T& get() noexcept {
    constexpr std::size_t index = detail::index_of_stage<T, Policies...>();
    static_assert(index < sizeof...(Policies),
                  "Pipeline::get<T>: T must appear exactly once among the policies; use get<I>()");
    return get<(index < sizeof...(Policies) ? index : 0)>();
  }

  /// A std::tuple of every policy's metrics(), std::monostate for a policy without any.
  [[nodiscard]] auto metrics() const {
    return std::apply(
        [](const auto&... stage) {
          return std::tuple{detail::metrics_of(detail::stage_ref(stage))...};
        },
        stages_);
  }

 private:
  template <std::size_t I, class F>
  decltype(auto) run(const Context& ctx, F& f) {
    if constexpr (I == sizeof...(Policies)) {
      return detail::call_with_context(f, ctx);
    } else if constexpr (I + 1 == sizeof...(Policies)) {
      return detail::stage_ref(std::get<I>(stages_)).execute(ctx, detail::user_call<F>{f});
    } else {
      return detail::stage_ref(std::get<I>(stages_))
          .execute(ctx, [this, &f](const Context& inner) -> decltype(auto) {
            return run<I + 1>(inner, f);
          });
    }
  }

  std::tuple<Policies...> stages_;
};

/// Deduces Pipeline<A, B, ...> from the policies; std::ref(p) deduces a shared stage.
template <class... Policies>
Pipeline(Policies...) -> Pipeline<Policies...>;

}  // namespace bulwark
