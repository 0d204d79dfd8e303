# The runtime's timers (engine/timers.c): waits that hold no worker thread.
add_test(NAME runtime_timers COMMAND bash ${CMAKE_SOURCE_DIR}/tests/runtime/test_timers.sh)
set_tests_properties(runtime_timers PROPERTIES LABELS "unit" ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>" TIMEOUT 60)
