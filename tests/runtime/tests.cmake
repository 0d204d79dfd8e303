# The runtime's timers (engine/timers.c): waits that hold no worker thread.
add_test(NAME runtime_timers COMMAND bash ${CMAKE_SOURCE_DIR}/tests/runtime/test_timers.sh)
set_tests_properties(runtime_timers PROPERTIES LABELS "unit" ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>" TIMEOUT 60)

# Step options retries/delay/until and node:run{changed=} on the lab's nodes.
add_test(NAME runtime_step_retries COMMAND bash ${CMAKE_SOURCE_DIR}/tests/runtime/test_steps.sh)
set_tests_properties(runtime_step_retries PROPERTIES LABELS "lab" TIMEOUT 180
                     ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
kcm_use_lab(lab runtime_step_retries)

# task.retry: waits by attempt or backoff, timeout, task.STOP, results.
add_test(NAME runtime_retry COMMAND bash ${CMAKE_SOURCE_DIR}/tests/runtime/test_retry.sh)
set_tests_properties(runtime_retry PROPERTIES LABELS "unit" ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>" TIMEOUT 60)
