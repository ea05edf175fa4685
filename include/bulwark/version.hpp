// bulwark/version.hpp — the library's version, as macros and as constants.
#pragma once

#define BULWARK_VERSION_MAJOR 0
#define BULWARK_VERSION_MINOR 1
#define BULWARK_VERSION_PATCH 0

namespace bulwark {
/// The version as "major.minor.patch".
inline constexpr const char* version = "0.1.0";
}  // namespace bulwark
