# kiln_test(NAME <name> SRCS <files...> DEPS <targets...> [LABELS <labels...>])
# One gtest executable registered with ctest (tests are discovered per case).
include(GoogleTest)
function(kiln_test)
  cmake_parse_arguments(T "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SRCS})
  target_link_libraries(${T_NAME} PRIVATE ${T_DEPS} GTest::gtest GTest::gtest_main)
  gtest_discover_tests(${T_NAME} PROPERTIES LABELS "unit;${T_LABELS}" DISCOVERY_TIMEOUT 60)
endfunction()
