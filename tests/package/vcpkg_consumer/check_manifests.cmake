# tests/package/vcpkg_consumer/check_manifests.cmake — the repository's vcpkg.json (manifest mode)
# must describe the same package as the port's (ports/bulwark/vcpkg.json): same name, the version
# of include/bulwark/version.hpp, the same features with the same dependencies.
#   cmake -DROOT_MANIFEST=<checkout>/vcpkg.json -DPORT_MANIFEST=<checkout>/ports/bulwark/vcpkg.json
#         -DEXPECTED_VERSION=0.1.0 -P check_manifests.cmake
cmake_minimum_required(VERSION 3.25)

# z_features(<json> <out>): the names of the manifest's features, sorted.
function(z_features json out)
  set(names "")
  string(JSON count ERROR_VARIABLE error LENGTH "${json}" features)
  if(NOT error AND count GREATER 0)
    math(EXPR last "${count} - 1")
    foreach(index RANGE ${last})
      string(JSON name MEMBER "${json}" features ${index})
      list(APPEND names ${name})
    endforeach()
  endif()
  list(SORT names)
  set(${out} "${names}" PARENT_SCOPE)
endfunction()

foreach(which IN ITEMS ROOT PORT)
  file(READ "${${which}_MANIFEST}" ${which})
  string(JSON name GET "${${which}}" name)  # fails here if the file is not JSON
  string(JSON version GET "${${which}}" version)
  if(NOT name STREQUAL "bulwark" OR NOT version STREQUAL EXPECTED_VERSION)
    message(FATAL_ERROR "${${which}_MANIFEST}: ${name} ${version}, expected bulwark "
                        "${EXPECTED_VERSION} (include/bulwark/version.hpp)")
  endif()
  z_features("${${which}}" ${which}_features)
endforeach()

if(NOT ROOT_features STREQUAL PORT_features)
  message(FATAL_ERROR "the features differ: ${ROOT_MANIFEST} has [${ROOT_features}], "
                      "${PORT_MANIFEST} has [${PORT_features}]")
endif()
foreach(feature IN LISTS PORT_features)
  string(JSON root_dependencies GET "${ROOT}" features ${feature} dependencies)
  string(JSON port_dependencies GET "${PORT}" features ${feature} dependencies)
  string(JSON same EQUAL "${root_dependencies}" "${port_dependencies}")
  if(NOT same)
    message(FATAL_ERROR "feature ${feature} has other dependencies in ${ROOT_MANIFEST}:\n"
                        "${root_dependencies}\nthan in ${PORT_MANIFEST}:\n${port_dependencies}")
  endif()
endforeach()

string(JSON count ERROR_VARIABLE none LENGTH "${ROOT}" default-features)
if(NOT none AND count GREATER 0)
  math(EXPR last "${count} - 1")
  foreach(index RANGE ${last})
    string(JSON feature GET "${ROOT}" default-features ${index})
    if(NOT feature IN_LIST PORT_features)
      message(FATAL_ERROR "${ROOT_MANIFEST}: default feature ${feature} is no feature")
    endif()
  endforeach()
endif()
message(STATUS "vcpkg manifests agree: bulwark ${EXPECTED_VERSION}, features [${PORT_features}]")
