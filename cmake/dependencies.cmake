# cmake/dependencies.cmake — the build's lookup of bulwark's dependencies, in this order:
#   1. an installed CMake package,  2. pkg-config,  3. FetchContent (only here, never from the
# installed package config), the version Debian 12 ships, which is what CI tests.
# Steps 1 and 2 live in bulwark-find-dependencies.cmake, which is installed with the config.
include_guard(GLOBAL)
include("${CMAKE_CURRENT_LIST_DIR}/bulwark-find-dependencies.cmake")
include(FetchContent)

# name -> (what, where, tag). Catch2 and benchmark are found with find_package only (step 1).
set(bulwark_fetch_httplib_what "cpp-httplib")
set(bulwark_fetch_httplib_url "https://github.com/yhirose/cpp-httplib.git")
set(bulwark_fetch_httplib_tag "v0.11.4")
set(bulwark_fetch_fmt_what "fmt")
set(bulwark_fetch_fmt_url "https://github.com/fmtlib/fmt.git")
set(bulwark_fetch_fmt_tag "9.1.0")
set(bulwark_fetch_Catch2_what "Catch2")
set(bulwark_fetch_Catch2_url "https://github.com/catchorg/Catch2.git")
set(bulwark_fetch_Catch2_tag "v2.13.10")
set(bulwark_fetch_benchmark_what "Google Benchmark")
set(bulwark_fetch_benchmark_url "https://github.com/google/benchmark.git")
set(bulwark_fetch_benchmark_tag "v1.7.1")

# bulwark_fetch(<name>): the last resort, FetchContent; the name's targets appear as a subproject.
macro(bulwark_fetch name)
  if("${name}" STREQUAL "benchmark")
    set(BENCHMARK_ENABLE_TESTING OFF CACHE BOOL "")
    set(BENCHMARK_ENABLE_INSTALL OFF CACHE BOOL "")
  endif()
  message(STATUS "bulwark: fetching ${bulwark_fetch_${name}_what} ${bulwark_fetch_${name}_tag} "
                 "(not found installed; BULWARK_FETCH_DEPENDENCIES=OFF prevents this)")
  FetchContent_Declare(
    ${name}
    GIT_REPOSITORY "${bulwark_fetch_${name}_url}"
    GIT_TAG "${bulwark_fetch_${name}_tag}"
    GIT_SHALLOW TRUE
    SYSTEM)
  FetchContent_MakeAvailable(${name})
endmacro()

# bulwark_missing(<what> <consequence>): a dependency could not be had. The presets (and so CI)
# set BULWARK_REQUIRE_DEPENDENCIES, making this an error; otherwise a warning (a status line when
# bulwark is a subproject), and the layer or suite that needs it is skipped.
function(bulwark_missing what consequence)
  if(BULWARK_REQUIRE_DEPENDENCIES)
    message(FATAL_ERROR "bulwark: ${what} not found (BULWARK_REQUIRE_DEPENDENCIES is ON): "
                        "install it, or configure with -DBULWARK_REQUIRE_DEPENDENCIES=OFF")
  endif()
  if(PROJECT_IS_TOP_LEVEL)
    message(WARNING "bulwark: ${what} not found: ${consequence}")
  else()
    message(STATUS "bulwark: ${what} not found: ${consequence}")  # a consumer may not need it
  endif()
endfunction()

# bulwark_resolve_dependency(<httplib|fmt> <result>): steps 1, 2, then 3 when allowed. When step 3
# provided it, the global property bulwark_<name>_fetched is set, and the install rules leave that
# layer out (its dependency would not be installed with it).
function(bulwark_resolve_dependency name result)
  if(name STREQUAL "httplib")
    set(target httplib::httplib)
    set(layer HTTP)
  else()
    set(target fmt::fmt)
    set(layer FORMAT)
  endif()
  cmake_language(CALL bulwark_find_${name} found)
  if(NOT found AND BULWARK_FETCH_DEPENDENCIES)
    bulwark_fetch(${name})
    set_property(GLOBAL PROPERTY bulwark_${name}_fetched TRUE)
    set_property(GLOBAL PROPERTY bulwark_${bulwark_fetch_${name}_what}_found_by
                 "FetchContent ${bulwark_fetch_${name}_tag}")
    if(TARGET ${target})
      set(found TRUE)
    endif()
  endif()
  if(NOT found)
    string(TOLOWER "${layer}" layer_name)
    bulwark_missing("${bulwark_fetch_${name}_what}"
                    "bulwark::${layer_name} is not defined (BULWARK_${layer}=OFF silences this)")
  endif()
  set(${result} ${found} PARENT_SCOPE)
endfunction()

# bulwark_require_package(<package> <target> <result>): Catch2 and benchmark for our own suites.
function(bulwark_require_package package target result)
  if(NOT TARGET ${target})
    find_package(${package} CONFIG QUIET)
  endif()
  if(NOT TARGET ${target} AND BULWARK_FETCH_DEPENDENCIES)
    bulwark_fetch(${package})
  endif()
  if(TARGET ${target})
    set(${result} TRUE PARENT_SCOPE)
  else()
    set(${result} FALSE PARENT_SCOPE)
  endif()
endfunction()
