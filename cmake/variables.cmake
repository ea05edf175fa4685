# cmake/variables.cmake — bulwark's options, and the warning guard for its include directories.

# What to build besides the library: by default only when bulwark is the top-level project, so a
# consumer's add_subdirectory/FetchContent builds and installs nothing of ours.
option(BULWARK_BUILD_TESTS "Build bulwark's tests" ${PROJECT_IS_TOP_LEVEL})
option(BULWARK_BUILD_EXAMPLES "Build bulwark's examples" ${PROJECT_IS_TOP_LEVEL})
option(BULWARK_BUILD_BENCHMARKS "Build bulwark's benchmarks" ${PROJECT_IS_TOP_LEVEL})
option(BULWARK_INSTALL "Generate bulwark's install rules" ${PROJECT_IS_TOP_LEVEL})
option(BULWARK_BUILD_FUZZERS "Build the libFuzzer targets in tests/fuzz (clang only)" OFF)

# Optional layers: each is defined only when its dependency is found.
option(BULWARK_HTTP "Define bulwark::http (needs cpp-httplib)" ON)
option(BULWARK_FORMAT "Define bulwark::format (needs fmt)" ON)

# Dependencies: found as an installed CMake package, else through pkg-config, else downloaded
# with FetchContent (needs network; by default only for a top-level build, never for a consumer).
# A dependency still missing skips what needs it with a warning, or fails the configure step
# when BULWARK_REQUIRE_DEPENDENCIES is ON (the presets and CI: everything comes from Debian).
option(BULWARK_FETCH_DEPENDENCIES "Download missing dependencies with FetchContent"
       ${PROJECT_IS_TOP_LEVEL})
option(BULWARK_REQUIRE_DEPENDENCIES "Fail instead of skipping what a missing dependency needs" OFF)

# Tests: a Catch2 test spec given to catch_discover_tests (the tsan preset selects "[threads]"),
# and whether CTest installs bulwark and builds the tests/package consumers.
set(BULWARK_TEST_SPEC "" CACHE STRING "Catch2 test spec selecting the tests CTest registers")
option(BULWARK_TEST_PACKAGES "Test installing and consuming bulwark (tests/package)" ON)

# The warning guard: a consumer's warnings are not ours to report, so when bulwark is a
# subproject its include directories are SYSTEM (the shape of friendlyanon/cmake-init).
set(bulwark_warning_guard "")
if(NOT PROJECT_IS_TOP_LEVEL)
  option(BULWARK_INCLUDES_WITH_SYSTEM
         "Use SYSTEM for bulwark's include directories, silencing warnings from its headers" ON)
  mark_as_advanced(BULWARK_INCLUDES_WITH_SYSTEM)
  if(BULWARK_INCLUDES_WITH_SYSTEM)
    set(bulwark_warning_guard SYSTEM)
  endif()
endif()
