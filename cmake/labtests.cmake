# Labs for the test suite. Each lab is a fixture of its own (NAME_up brings a
# 3-node lab up under ${CMAKE_BINARY_DIR}/NAME, NAME_down always removes it),
# and the tests that change a lab hold its lock, so tests of one lab run one
# at a time while tests of other labs, and tests that need no lab, run beside
# them (ctest -j). A lab's name derives from its folder, so the labs of two
# build trees never meet.

# kcm_lab_fixture(NAME [NODES]): the fixture NAME and its up/down tests;
# NODES nodes (3 unless given)
function(kcm_lab_fixture name)
  set(nodes 3)
  if(ARGC GREATER 1)
    set(nodes ${ARGV1})
  endif()
  set(env "KCMRUN=${KCMRUN}" "KCMRUN_LAB_DIR=${CMAKE_BINARY_DIR}/${name}")
  # a lab left over by an interrupted run is removed first
  add_test(NAME ${name}_up COMMAND bash -c "\"$1\" lab down >/dev/null 2>&1; exec \"$1\" lab up --nodes ${nodes}"
           ${name}_up ${KCMRUN})
  set_tests_properties(${name}_up PROPERTIES FIXTURES_SETUP ${name} RESOURCE_LOCK ${name} LABELS "lab"
                       ENVIRONMENT "${env}" TIMEOUT 300)
  add_test(NAME ${name}_down COMMAND ${KCMRUN} lab down)
  set_tests_properties(${name}_down PROPERTIES FIXTURES_CLEANUP ${name} RESOURCE_LOCK ${name} LABELS "lab"
                       ENVIRONMENT "${env}" TIMEOUT 120)
endfunction()

# kcm_use_lab(LAB TEST...): the tests run on LAB, one at a time; their
# ENVIRONMENT gets KCMRUN_LAB_DIR (appended: it wins over an earlier one)
function(kcm_use_lab lab)
  foreach(t ${ARGN})
    set_property(TEST ${t} APPEND PROPERTY FIXTURES_REQUIRED ${lab})
    set_property(TEST ${t} APPEND PROPERTY RESOURCE_LOCK ${lab})
    set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT "KCMRUN_LAB_DIR=${CMAKE_BINARY_DIR}/${lab}")
    set_property(GLOBAL APPEND PROPERTY KCM_LAB_TESTS_${lab} ${t})
  endforeach()
endfunction()

# kcm_lab_order(LAB TEST...): the one order the tests of LAB run in. Tests
# of a lab build on what the previous one left (a converged cluster, the
# certificates of one state folder), so each depends on the one before it;
# a test of the lab missing from the list is a configure error.
function(kcm_lab_order lab)
  get_property(all GLOBAL PROPERTY KCM_LAB_TESTS_${lab})
  foreach(t ${all})
    if(NOT t IN_LIST ARGN)
      message(FATAL_ERROR "test ${t} runs on lab ${lab} but is not in its kcm_lab_order list (tests/lab/order.cmake)")
    endif()
  endforeach()
  set(prev "")
  foreach(t ${ARGN})
    if(NOT t IN_LIST all)
      message(FATAL_ERROR "kcm_lab_order(${lab}): ${t} does not run on that lab")
    endif()
    if(prev)
      set_property(TEST ${t} APPEND PROPERTY DEPENDS ${prev})
    endif()
    set(prev ${t})
  endforeach()
endfunction()
