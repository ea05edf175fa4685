// bulwark/detail/validate.hpp — the one way configs report a bad field.
#pragma once

#include <chrono>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

#include "../errors.hpp"

namespace bulwark::detail {

/// Renders a config value for an error message: durations in ms, numbers as written.
template <class T>
std::string describe_value(const T& value) {
  if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
    return std::to_string(value.count()) + "ms";
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return std::string(std::string_view(value));
  } else {
    std::ostringstream out;
    out << value;
    return out.str();
  }
}

/// Throws config_error "<type>.<field> <rule>, got <value>" unless `ok`.
template <class T>
void require(bool ok, std::string_view type, std::string_view field, std::string_view rule,
             const T& value) {
  if (!ok) {
    throw config_error(std::string(type) + "." + std::string(field) + " " + std::string(rule) +
                       ", got " + describe_value(value));
  }
}

}  // namespace bulwark::detail
