# cmake/install-rules.cmake — installs the headers and a CMake package:
#   find_package(bulwark CONFIG [COMPONENTS http format])
# Each target has its own export set, so the core's config loads without cpp-httplib or fmt and a
# component is loaded only when asked for.
include(CMakePackageConfigHelpers)

set(BULWARK_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/bulwark"
    CACHE STRING "Where bulwark's CMake package config goes, relative to the prefix")
mark_as_advanced(BULWARK_INSTALL_CMAKEDIR)

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        COMPONENT bulwark_Development)

install(TARGETS bulwark EXPORT bulwark-targets)
install(EXPORT bulwark-targets NAMESPACE bulwark:: DESTINATION "${BULWARK_INSTALL_CMAKEDIR}"
        COMPONENT bulwark_Development)

# http needs cpp-httplib, format needs fmt. A layer whose dependency was fetched with
# FetchContent is not installed: the consumer could not find that dependency.
foreach(layer IN ITEMS http format)
  if(layer STREQUAL "http")
    set(dependency httplib)
  else()
    set(dependency fmt)
  endif()
  get_property(fetched GLOBAL PROPERTY bulwark_${dependency}_fetched)
  if(TARGET bulwark_${layer} AND fetched)
    message(STATUS "bulwark: not installing bulwark::${layer}: its dependency was fetched")
  elseif(TARGET bulwark_${layer})
    install(TARGETS bulwark_${layer} EXPORT bulwark-${layer}-targets)
    install(EXPORT bulwark-${layer}-targets NAMESPACE bulwark::
            DESTINATION "${BULWARK_INSTALL_CMAKEDIR}" COMPONENT bulwark_Development)
  endif()
endforeach()

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/bulwark-config.cmake.in"
  "${PROJECT_BINARY_DIR}/bulwark-config.cmake"
  INSTALL_DESTINATION "${BULWARK_INSTALL_CMAKEDIR}"
  NO_SET_AND_CHECK_MACRO)
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/bulwark-config-version.cmake"
  COMPATIBILITY SameMajorVersion
  ARCH_INDEPENDENT)
install(FILES "${PROJECT_BINARY_DIR}/bulwark-config.cmake"
              "${PROJECT_BINARY_DIR}/bulwark-config-version.cmake"
              "${PROJECT_SOURCE_DIR}/cmake/bulwark-find-dependencies.cmake"
        DESTINATION "${BULWARK_INSTALL_CMAKEDIR}"
        COMPONENT bulwark_Development)
