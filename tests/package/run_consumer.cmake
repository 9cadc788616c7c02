# CTest `package_consumer`: install this build into a fresh temporary prefix, then configure,
# build and run tests/package/consumer against it with find_package(shardcheck REQUIRED).
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=... -P run_consumer.cmake
foreach(v BUILD_DIR SOURCE_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_consumer.cmake: ${v} not set")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}"
                OUTPUT_QUIET COMMAND_ERROR_IS_FATAL ANY)
foreach(f lib/cmake/shardcheck/shardcheckConfig.cmake lib/cmake/shardcheck/shardcheckConfigVersion.cmake
          include/shardcheck/models/config.h include/shardcheck/checks/checker.h bin/shardcheck)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "run_consumer.cmake: ${f} was not installed")
  endif()
endforeach()
# Only the installed prefix is searched (no package registry, no system shardcheck).
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/package/consumer" -B "${WORK_DIR}/build"
                        -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${prefix}"
                        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF
                COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}/build" -j1 COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND "${WORK_DIR}/build/consumer" "${SOURCE_DIR}/fixtures/configs/qwen3-235b-a22b/config.json"
                COMMAND_ERROR_IS_FATAL ANY)
