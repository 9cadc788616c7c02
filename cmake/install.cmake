# Install rules and the CMake package (find_package(shardcheck)): the `shardcheck` binary, the
# libraries and their headers under include/shardcheck/<folder>/ (sources include them as
# "models/config.h", "checks/checker.h", ...). Exported targets carry the namespace shardcheck::.
#
#   shardcheckTargets.cmake       sc_models, sc_layout, sc_families, sc_checks, sc_reports: torch-free, always
#   shardcheckTorchTargets.cmake  sc_models_torch (+ sc_cuda_kernels), sc_harness, sc_steering:
#                                 only in LibTorch builds; shardcheckConfig.cmake loads them (and
#                                 finds Torch) only where they were installed
#
# tests/package/ installs a torch-free build into a temporary prefix and builds a consumer.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SC_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/shardcheck)
set(SC_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/shardcheck)

install(TARGETS shardcheck RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# nlohmann_json: the package's target when CMake found it; otherwise the headers are on the
# include path (SHARDCHECK_EXTRA_INCLUDE) and the empty stand-in target is exported with us.
set(SC_CORE_EXPORT sc_models sc_layout sc_families sc_checks sc_reports)
if(NOT nlohmann_json_FOUND)
  list(APPEND SC_CORE_EXPORT nlohmann_json)
endif()
install(TARGETS ${SC_CORE_EXPORT} EXPORT shardcheckTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${SC_INSTALL_INCLUDEDIR})
install(EXPORT shardcheckTargets NAMESPACE shardcheck:: DESTINATION ${SC_INSTALL_CMAKEDIR})

# Public headers, keeping their folders. Torch-free folders hold no torch header (families/decoder/
# and ops/ do, and are installed with the torch targets); checks/fuzz/ needs rapidcheck and is not
# exported.
install(DIRECTORY models/ DESTINATION ${SC_INSTALL_INCLUDEDIR}/models FILES_MATCHING PATTERN "*.h")
install(DIRECTORY layout/ DESTINATION ${SC_INSTALL_INCLUDEDIR}/layout FILES_MATCHING PATTERN "*.h")
install(DIRECTORY families/ DESTINATION ${SC_INSTALL_INCLUDEDIR}/families FILES_MATCHING PATTERN "*.h"
        PATTERN "decoder" EXCLUDE)
install(DIRECTORY checks/ DESTINATION ${SC_INSTALL_INCLUDEDIR}/checks FILES_MATCHING PATTERN "*.h"
        PATTERN "fuzz" EXCLUDE)
install(DIRECTORY reports/ DESTINATION ${SC_INSTALL_INCLUDEDIR}/reports FILES_MATCHING PATTERN "*.h")

set(SC_PACKAGE_TORCH OFF)
if(SHARDCHECK_WITH_TORCH)
  set(SC_TORCH_EXPORT "")
  foreach(lib sc_cuda_kernels sc_ops sc_models_torch sc_harness sc_steering)
    if(TARGET ${lib})
      list(APPEND SC_TORCH_EXPORT ${lib})
    endif()
  endforeach()
  if(SC_TORCH_EXPORT)
    set(SC_PACKAGE_TORCH ON)
    install(TARGETS ${SC_TORCH_EXPORT} EXPORT shardcheckTorchTargets
            ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
            LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
            INCLUDES DESTINATION ${SC_INSTALL_INCLUDEDIR})
    install(EXPORT shardcheckTorchTargets NAMESPACE shardcheck:: DESTINATION ${SC_INSTALL_CMAKEDIR})
    install(DIRECTORY families/decoder/ DESTINATION ${SC_INSTALL_INCLUDEDIR}/families/decoder FILES_MATCHING PATTERN "*.h")
    install(DIRECTORY ops/ DESTINATION ${SC_INSTALL_INCLUDEDIR}/ops FILES_MATCHING PATTERN "*.h")
    foreach(dir harness steering)
      install(DIRECTORY ${dir}/ DESTINATION ${SC_INSTALL_INCLUDEDIR}/${dir} FILES_MATCHING PATTERN "*.h"
              PATTERN "fuzz" EXCLUDE)
    endforeach()
  endif()
endif()

# What shardcheckConfig.cmake must find again for the exported link interfaces.
set(SC_PACKAGE_NLOHMANN ${nlohmann_json_FOUND})
set(SC_PACKAGE_PCRE2 ${PCRE2_FOUND})
set(SC_PACKAGE_UTF8PROC ${UTF8PROC_FOUND})
set(SC_PACKAGE_CUDA ${SC_CUDA_KERNELS})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/shardcheckConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/shardcheckConfig.cmake
                              INSTALL_DESTINATION ${SC_INSTALL_CMAKEDIR})
# 0.x: a minor version may break the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/shardcheckConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/shardcheckConfig.cmake ${PROJECT_BINARY_DIR}/shardcheckConfigVersion.cmake
        DESTINATION ${SC_INSTALL_CMAKEDIR})
