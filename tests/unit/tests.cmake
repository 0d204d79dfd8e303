foreach(case forks serial isolation override check steps lock coroutine signal)
  add_test(NAME engine_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/unit/test_engine.sh ${case})
  set_tests_properties(engine_${case} PROPERTIES LABELS "unit" ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>" TIMEOUT 120)
endforeach()

# Host patterns (kcm.pattern) as Ansible reads them: groups, globs, ranges, unions, &, !
add_test(NAME unit_pattern COMMAND $<TARGET_FILE:kcmrun> ${CMAKE_SOURCE_DIR}/tests/unit/pattern_test.lua)
set_tests_properties(unit_pattern PROPERTIES LABELS "unit" TIMEOUT 30)
# The ad-hoc commands' grouping (node1..node3 (3)), recap and failure line (kcm.adhoc)
add_test(NAME unit_adhoc COMMAND $<TARGET_FILE:kcmrun> ${CMAKE_SOURCE_DIR}/tests/unit/adhoc_test.lua)
set_tests_properties(unit_adhoc PROPERTIES LABELS "unit" TIMEOUT 30)
# The component's description as data (kcm.component: GUIDE defaults, subject, layout) and its parts without a cycle
add_test(NAME unit_component COMMAND $<TARGET_FILE:kcmrun> ${CMAKE_SOURCE_DIR}/tests/unit/component_test.lua)
set_tests_properties(unit_component PROPERTIES LABELS "unit" TIMEOUT 30)
