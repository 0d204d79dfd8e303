# C unit tests (issue 8 point 9): plain C programs on the kcmcore library,
# each exits non-zero on failure. Every one also runs under valgrind
# memcheck (label "valgrind"), except in sanitizer builds.
set(_cu ${CMAKE_SOURCE_DIR}/tests/cunit)
find_program(KCM_VALGRIND valgrind)

foreach(name jobs job_guard template yaml crypto known_hosts fs)
  add_executable(cunit_${name} ${_cu}/test_${name}.c)
  target_link_libraries(cunit_${name} PRIVATE kcmcore)
  add_test(NAME cunit_${name} COMMAND cunit_${name})
  set_tests_properties(cunit_${name} PROPERTIES LABELS "unit;cunit" TIMEOUT 120)
  if(KCM_VALGRIND AND NOT KCM_SANITIZE)
    add_test(NAME valgrind_${name}
             COMMAND ${KCM_VALGRIND} --error-exitcode=99 --leak-check=full
                     --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
                     --suppressions=${_cu}/valgrind.supp --num-callers=30 -q
                     $<TARGET_FILE:cunit_${name}>)
    set_tests_properties(valgrind_${name} PROPERTIES LABELS "valgrind" TIMEOUT 600)
  endif()
endforeach()
