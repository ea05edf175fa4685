# cmake/bulwark-find-dependencies.cmake — how bulwark's optional layers find their dependency:
# an installed CMake package first, then pkg-config. The build (cmake/dependencies.cmake, which
# adds FetchContent as a last resort) and the installed package config both use this file, so a
# consumer finds cpp-httplib and fmt the way bulwark's own build did.
#
# Each function makes one target available and sets <result> to TRUE or FALSE:
#   bulwark_find_httplib(<result>)  ->  httplib::httplib
#   bulwark_find_fmt(<result>)      ->  fmt::fmt
# When only pkg-config knows the library (Debian's libcpp-httplib-dev ships cpp-httplib.pc and no
# CMake package), the target is an IMPORTED INTERFACE library wrapping the pkg-config one, so that
# bulwark's exported targets always name httplib::httplib / fmt::fmt however they were found.
include_guard(GLOBAL)

# bulwark_find_with_pkg_config(<target> <module> <result>): creates <target> from <module>.
function(bulwark_find_with_pkg_config target module result)
  set(${result} FALSE PARENT_SCOPE)
  find_package(PkgConfig QUIET)
  if(NOT PKG_CONFIG_FOUND)
    return()
  endif()
  string(MAKE_C_IDENTIFIER "bulwark_pc_${module}" prefix)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET "${module}")
  if(NOT ${prefix}_FOUND)
    return()
  endif()
  add_library(${target} INTERFACE IMPORTED)
  target_link_libraries(${target} INTERFACE PkgConfig::${prefix})
  set_property(GLOBAL PROPERTY bulwark_${module}_found_by "pkg-config ${module} ${${prefix}_VERSION}")
  set(${result} TRUE PARENT_SCOPE)
endfunction()

function(bulwark_find_httplib result)
  if(NOT TARGET httplib::httplib)
    find_package(httplib CONFIG QUIET)
    if(TARGET httplib::httplib)
      set_property(GLOBAL PROPERTY bulwark_cpp-httplib_found_by "CMake package ${httplib_VERSION}")
    endif()
  endif()
  if(NOT TARGET httplib::httplib)
    # cpp-httplib.pc: -DCPPHTTPLIB_OPENSSL_SUPPORT ... and -lcpp-httplib (a compiled library).
    bulwark_find_with_pkg_config(httplib::httplib cpp-httplib found)
    # Built with TLS, its header declares OpenSSL types that bulwark calls (SSL_CTX_*): link
    # OpenSSL as cpp-httplib's own CMake package does (the .pc lists it only for static links).
    if(found AND bulwark_pc_cpp_httplib_CFLAGS_OTHER MATCHES "CPPHTTPLIB_OPENSSL_SUPPORT")
      find_package(OpenSSL QUIET)
      if(TARGET OpenSSL::SSL)
        target_link_libraries(httplib::httplib INTERFACE OpenSSL::SSL OpenSSL::Crypto)
      else()
        message(WARNING "bulwark: cpp-httplib was built with OpenSSL, which is not found")
      endif()
    endif()
  endif()
  if(TARGET httplib::httplib)
    set(${result} TRUE PARENT_SCOPE)
  else()
    set(${result} FALSE PARENT_SCOPE)
  endif()
endfunction()

function(bulwark_find_fmt result)
  if(NOT TARGET fmt::fmt)
    find_package(fmt CONFIG QUIET)
    if(TARGET fmt::fmt)
      set_property(GLOBAL PROPERTY bulwark_fmt_found_by "CMake package ${fmt_VERSION}")
    endif()
  endif()
  if(NOT TARGET fmt::fmt)
    bulwark_find_with_pkg_config(fmt::fmt fmt found)
  endif()
  if(TARGET fmt::fmt)
    set(${result} TRUE PARENT_SCOPE)
  else()
    set(${result} FALSE PARENT_SCOPE)
  endif()
endfunction()
