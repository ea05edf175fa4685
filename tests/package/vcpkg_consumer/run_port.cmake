# tests/package/vcpkg_consumer/run_port.cmake — `vcpkg install bulwark[<features>]` without vcpkg:
# runs ports/bulwark/portfile.cmake in script mode, as vcpkg does, with stand-ins for the vcpkg
# helpers it calls, then makes the checks vcpkg makes after a build. So the options the port
# passes are exactly the ones tested: there is no second copy of them.
#
#   cmake -DPORT_DIR=<checkout>/ports/bulwark -DPORT_FEATURES=http,format
#         -DPACKAGES_DIR=<prefix> -DBUILDTREES_DIR=<dir> -DEXPECTED_VERSION=0.1.0
#         -DGENERATOR=Ninja -DMAKE_PROGRAM=<ninja> -DCXX_COMPILER=<c++> -P run_port.cmake
#
# The stand-ins follow the documented behaviour of vcpkg's helpers for what this port uses and
# fail on anything else (an argument they do not know, a config that would have to be moved), so
# a port change they cannot imitate faithfully is caught, not glossed over. What they leave out:
# vcpkg's toolchain file and triplet flags (the port compiles nothing), and the path rewriting
# of vcpkg_cmake_config_fixup, which has nothing to do when the config is installed in place.
cmake_minimum_required(VERSION 3.25)

foreach(variable IN ITEMS PORT_DIR PACKAGES_DIR BUILDTREES_DIR EXPECTED_VERSION GENERATOR
                          CXX_COMPILER)
  if(NOT DEFINED ${variable} OR "${${variable}}" STREQUAL "")
    message(FATAL_ERROR "run_port.cmake: set ${variable}")
  endif()
endforeach()

# ---- what vcpkg knows before running the portfile ----

file(READ "${PORT_DIR}/vcpkg.json" manifest)
string(JSON PORT GET "${manifest}" name)
string(JSON VERSION GET "${manifest}" version)
if(NOT "${VERSION}" STREQUAL "${EXPECTED_VERSION}")
  message(FATAL_ERROR "${PORT_DIR}/vcpkg.json says version ${VERSION}, "
                      "but include/bulwark/version.hpp says ${EXPECTED_VERSION}")
endif()
string(JSON feature_count LENGTH "${manifest}" features)
set(declared_features "")
math(EXPR last "${feature_count} - 1")
foreach(index RANGE ${last})
  string(JSON feature MEMBER "${manifest}" features ${index})
  list(APPEND declared_features ${feature})
endforeach()

string(REPLACE "," ";" requested_features "${PORT_FEATURES}")
set(FEATURES core)  # what vcpkg sets: "core" and every feature being installed
foreach(feature IN LISTS requested_features)
  if(NOT feature IN_LIST declared_features)
    message(FATAL_ERROR "${PORT}[${feature}]: the port declares no feature ${feature} "
                        "(it has: ${declared_features})")
  endif()
  list(APPEND FEATURES ${feature})
endforeach()

set(CURRENT_PORT_DIR "${PORT_DIR}")
set(CURRENT_PACKAGES_DIR "${PACKAGES_DIR}")
set(CURRENT_BUILDTREES_DIR "${BUILDTREES_DIR}")
set(TARGET_TRIPLET "x64-linux")
set(VCPKG_LIBRARY_LINKAGE "static")
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}" "${CURRENT_BUILDTREES_DIR}")
file(MAKE_DIRECTORY "${CURRENT_PACKAGES_DIR}" "${CURRENT_BUILDTREES_DIR}")

# ---- stand-ins for the helpers ----

function(z_reject_unparsed helper)
  if(DEFINED arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "${helper}: this stand-in does not support ${arg_UNPARSED_ARGUMENTS}")
  endif()
endfunction()

# Each <feature> <variable> pair adds -D<variable>=ON when the feature is being installed, else
# -D<variable>=OFF (the reverse for INVERTED_FEATURES). The features the port maps are recorded.
set(z_mapped_features "")
function(vcpkg_check_features)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "OUT_FEATURE_OPTIONS;PREFIX"
                        "FEATURES;INVERTED_FEATURES")
  z_reject_unparsed(vcpkg_check_features)
  set(prefix "")
  if(DEFINED arg_PREFIX)
    set(prefix "${arg_PREFIX}_")
  endif()
  set(options "")
  set(mapped "${z_mapped_features}")
  foreach(kind IN ITEMS FEATURES INVERTED_FEATURES)
    set(pairs "${arg_${kind}}")
    list(LENGTH pairs length)
    math(EXPR odd "${length} % 2")
    if(odd)
      message(FATAL_ERROR "vcpkg_check_features: ${kind} needs <feature> <variable> pairs")
    endif()
    while(length GREATER 0)
      list(POP_FRONT pairs feature variable)
      math(EXPR length "${length} - 2")
      list(APPEND mapped ${feature})
      set(installed OFF)
      if(feature IN_LIST FEATURES)
        set(installed ON)
      endif()
      if(kind STREQUAL "FEATURES")
        set(value ${installed})
      elseif(installed)
        set(value OFF)
      else()
        set(value ON)
      endif()
      list(APPEND options "-D${variable}=${value}")
      set(${prefix}${variable} ${value} PARENT_SCOPE)
    endwhile()
  endforeach()
  set(z_mapped_features "${mapped}" PARENT_SCOPE)
  set(${arg_OUT_FEATURE_OPTIONS} "${options}" PARENT_SCOPE)
endfunction()

# Configures release into CURRENT_PACKAGES_DIR and debug into CURRENT_PACKAGES_DIR/debug (only
# VCPKG_BUILD_TYPE when the port sets it), with the fixed options vcpkg adds that matter here.
# A variable the port passes that the project never reads fails the run (vcpkg only warns):
# that is an option renamed on one side only.
set(z_configured "")
function(vcpkg_cmake_configure)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "SOURCE_PATH"
                        "OPTIONS;OPTIONS_RELEASE;OPTIONS_DEBUG;MAYBE_UNUSED_VARIABLES")
  z_reject_unparsed(vcpkg_cmake_configure)
  if(NOT IS_DIRECTORY "${arg_SOURCE_PATH}")
    message(FATAL_ERROR "vcpkg_cmake_configure: SOURCE_PATH ${arg_SOURCE_PATH} is no directory")
  endif()
  set(build_types release debug)
  if(DEFINED VCPKG_BUILD_TYPE)
    set(build_types "${VCPKG_BUILD_TYPE}")
  endif()
  set(configured "")
  foreach(build_type IN LISTS build_types)
    if(build_type STREQUAL "release")
      set(suffix rel)
      set(config Release)
      set(prefix "${CURRENT_PACKAGES_DIR}")
      set(type_options ${arg_OPTIONS_RELEASE})
    else()
      set(suffix dbg)
      set(config Debug)
      set(prefix "${CURRENT_PACKAGES_DIR}/debug")
      set(type_options ${arg_OPTIONS_DEBUG})
    endif()
    set(binary_dir "${CURRENT_BUILDTREES_DIR}/${TARGET_TRIPLET}-${suffix}")
    set(command
        "${CMAKE_COMMAND}" -S "${arg_SOURCE_PATH}" -B "${binary_dir}" -G "${GENERATOR}"
        "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_BUILD_TYPE=${config}"
        "-DCMAKE_INSTALL_PREFIX=${prefix}" -DBUILD_SHARED_LIBS=OFF
        -DCMAKE_EXPORT_NO_PACKAGE_REGISTRY=ON -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON
        -DCMAKE_FIND_PACKAGE_NO_SYSTEM_PACKAGE_REGISTRY=ON
        -DCMAKE_ERROR_ON_ABSOLUTE_INSTALL_DESTINATION=ON
        -DCMAKE_INSTALL_LIBDIR:STRING=lib -DCMAKE_INSTALL_BINDIR:STRING=bin
        ${arg_OPTIONS} ${type_options})
    if(MAKE_PROGRAM)
      list(APPEND command "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
    endif()
    list(JOIN command " " shown)
    message(STATUS "vcpkg_cmake_configure (${build_type}): ${shown}")
    execute_process(COMMAND ${command} RESULT_VARIABLE failed OUTPUT_VARIABLE out
                    ERROR_VARIABLE out)
    if(failed)
      message(FATAL_ERROR "configuring ${PORT} (${build_type}) failed:\n${out}")
    endif()
    set(unused "")
    if(out MATCHES "Manually-specified variables were not used by the project:\n\n(( +[^\n]+\n)+)")
      string(REGEX MATCHALL "[^ \n]+" unused "${CMAKE_MATCH_1}")
    endif()
    foreach(option IN LISTS arg_OPTIONS type_options)
      if(option MATCHES "^-D([^:=]+)[:=]" AND CMAKE_MATCH_1 IN_LIST unused
         AND NOT CMAKE_MATCH_1 IN_LIST arg_MAYBE_UNUSED_VARIABLES)
        message(FATAL_ERROR "the port passes ${option}, which ${PORT}'s build never reads:\n${out}")
      endif()
    endforeach()
    list(APPEND configured "${binary_dir}")
  endforeach()
  set(z_configured "${configured}" PARENT_SCOPE)
endfunction()

# Builds the install target of every configuration.
function(vcpkg_cmake_install)
  cmake_parse_arguments(PARSE_ARGV 0 arg "DISABLE_PARALLEL;ADD_BIN_TO_PATH" "" "")
  z_reject_unparsed(vcpkg_cmake_install)
  if(NOT z_configured)
    message(FATAL_ERROR "vcpkg_cmake_install: vcpkg_cmake_configure was not called")
  endif()
  foreach(binary_dir IN LISTS z_configured)
    execute_process(COMMAND "${CMAKE_COMMAND}" --build "${binary_dir}" --target install
                    RESULT_VARIABLE failed OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(failed)
      message(FATAL_ERROR "installing ${PORT} from ${binary_dir} failed:\n${out}")
    endif()
  endforeach()
endfunction()

# The in-place case only (CONFIG_PATH = share/<package>): checks the config is there, drops the
# debug copies of the config files and removes what is left empty, as vcpkg does. Moving a config
# from elsewhere also rewrites its relative paths, which this stand-in does not imitate.
function(vcpkg_cmake_config_fixup)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "PACKAGE_NAME;CONFIG_PATH" "")
  z_reject_unparsed(vcpkg_cmake_config_fixup)
  if(NOT arg_PACKAGE_NAME)
    set(arg_PACKAGE_NAME "${PORT}")
  endif()
  set(share "share/${arg_PACKAGE_NAME}")
  if(arg_CONFIG_PATH AND NOT arg_CONFIG_PATH STREQUAL share)
    message(FATAL_ERROR "vcpkg_cmake_config_fixup: CONFIG_PATH ${arg_CONFIG_PATH} would be moved "
                        "to ${share}; this stand-in only checks a config installed in place "
                        "(install it there: -DBULWARK_INSTALL_CMAKEDIR=${share})")
  endif()
  if(NOT EXISTS "${CURRENT_PACKAGES_DIR}/${share}/${arg_PACKAGE_NAME}-config.cmake")
    message(FATAL_ERROR "vcpkg_cmake_config_fixup: no ${share}/${arg_PACKAGE_NAME}-config.cmake")
  endif()
  if(NOT DEFINED VCPKG_BUILD_TYPE OR VCPKG_BUILD_TYPE STREQUAL "debug")
    set(debug_share "${CURRENT_PACKAGES_DIR}/debug/${share}")
    if(NOT EXISTS "${debug_share}")
      message(FATAL_ERROR "vcpkg_cmake_config_fixup: '${debug_share}' does not exist.")
    endif()
    file(GLOB_RECURSE debug_configs "${debug_share}/*[Tt]argets.cmake"
         "${debug_share}/*[Cc]onfig.cmake" "${debug_share}/*[Cc]onfig-version.cmake"
         "${debug_share}/*[Cc]onfigVersion.cmake")
    if(debug_configs)
      file(REMOVE ${debug_configs})
    endif()
    file(GLOB_RECURSE debug_targets "${debug_share}/*-debug.cmake")
    if(debug_targets)
      message(FATAL_ERROR "vcpkg_cmake_config_fixup: per-configuration targets in a header-only "
                          "package: ${debug_targets}")
    endif()
    foreach(directory IN ITEMS "${debug_share}" "${CURRENT_PACKAGES_DIR}/debug/share")
      file(GLOB_RECURSE remaining "${directory}/*")
      if(NOT remaining)
        file(REMOVE_RECURSE "${directory}")
      endif()
    endforeach()
  endif()
endfunction()

# Concatenates the files into share/<port>/copyright.
function(vcpkg_install_copyright)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "COMMENT" "FILE_LIST")
  z_reject_unparsed(vcpkg_install_copyright)
  set(text "")
  if(arg_COMMENT)
    string(APPEND text "${arg_COMMENT}\n\n")
  endif()
  foreach(file IN LISTS arg_FILE_LIST)
    if(NOT EXISTS "${file}")
      message(FATAL_ERROR "vcpkg_install_copyright: ${file} does not exist")
    endif()
    file(READ "${file}" contents)
    string(APPEND text "${contents}")
  endforeach()
  file(WRITE "${CURRENT_PACKAGES_DIR}/share/${PORT}/copyright" "${text}")
endfunction()

# ---- the port ----

include("${PORT_DIR}/portfile.cmake")

# ---- what vcpkg checks afterwards, and what a header-only port must look like ----

set(mapped "${z_mapped_features}")
list(REMOVE_DUPLICATES mapped)
list(SORT mapped)
list(SORT declared_features)
if(NOT mapped STREQUAL declared_features)
  message(FATAL_ERROR "the port's vcpkg.json declares the features [${declared_features}] but "
                      "portfile.cmake maps [${mapped}] to options")
endif()

set(package "${CURRENT_PACKAGES_DIR}")
file(GLOB top_level RELATIVE "${package}" "${package}/*")
list(SORT top_level)
if(NOT top_level STREQUAL "include;share")
  message(FATAL_ERROR "a header-only package holds include/ and share/ only, not: ${top_level}")
endif()
foreach(required IN ITEMS include/bulwark/bulwark.hpp share/${PORT}/copyright
                          share/${PORT}/usage share/${PORT}/${PORT}-config.cmake
                          share/${PORT}/${PORT}-config-version.cmake)
  if(NOT EXISTS "${package}/${required}")
    message(FATAL_ERROR "the package lacks ${required}")
  endif()
endforeach()
file(GLOB_RECURSE everything LIST_DIRECTORIES TRUE "${package}/*")
foreach(entry IN LISTS everything)
  if(IS_DIRECTORY "${entry}")
    file(GLOB children "${entry}/*")
    if(NOT children)
      message(FATAL_ERROR "the package holds an empty directory: ${entry}")
    endif()
  elseif(entry MATCHES "\\.cmake$")
    file(READ "${entry}" contents)
    string(FIND "${contents}" "${package}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "${entry} holds the absolute path of the package: not relocatable")
    endif()
  endif()
endforeach()
foreach(feature IN ITEMS http format)
  set(targets "${package}/share/${PORT}/${PORT}-${feature}-targets.cmake")
  if((feature IN_LIST FEATURES) AND NOT EXISTS "${targets}")
    message(FATAL_ERROR "${PORT}[${feature}] installed no bulwark::${feature}")
  elseif(NOT (feature IN_LIST FEATURES) AND EXISTS "${targets}")
    message(FATAL_ERROR "bulwark::${feature} installed without the feature ${feature}")
  endif()
endforeach()
message(STATUS "${PORT}[${FEATURES}] ${VERSION} installed into ${package}")
