# The overlay port builds the checkout it lives in (<checkout>/ports/bulwark -> <checkout>):
#   vcpkg install "bulwark[http,format]" --overlay-ports=<checkout>/ports
# A registry port would fetch a release instead:
#   vcpkg_from_github(OUT_SOURCE_PATH SOURCE_PATH REPO <owner>/bulwark REF "v${VERSION}"
#                     SHA512 <...> HEAD_REF main)
# tests/CMakeLists.txt runs this file under a stand-in for vcpkg's helpers and builds a consumer
# against the result, for every feature set (tests/package/vcpkg_consumer).
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

vcpkg_check_features(
    OUT_FEATURE_OPTIONS FEATURE_OPTIONS
    FEATURES
        http    BULWARK_HTTP
        format  BULWARK_FORMAT
)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${FEATURE_OPTIONS}
        -DBULWARK_BUILD_TESTS=OFF
        -DBULWARK_BUILD_EXAMPLES=OFF
        -DBULWARK_BUILD_BENCHMARKS=OFF
        -DBULWARK_INSTALL=ON
        # cpp-httplib and fmt come from vcpkg; a feature whose dependency is missing fails the
        # build instead of installing bulwark without that layer
        -DBULWARK_FETCH_DEPENDENCIES=OFF
        -DBULWARK_REQUIRE_DEPENDENCIES=ON
        -DBULWARK_INSTALL_CMAKEDIR=share/${PORT}
)

vcpkg_cmake_install()

vcpkg_cmake_config_fixup()  # the config is already in share/bulwark: this only checks and merges

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug")  # header-only

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
