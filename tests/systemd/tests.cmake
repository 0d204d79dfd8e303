add_test(NAME systemd_lab COMMAND bash -c "eval \"$(\"$1\" lab env)\" && \"$1\" --no-lock -i \"$KCMRUN_LAB_INVENTORY\" \"$2\"" systemd_lab
         $<TARGET_FILE:kcmrun> ${CMAKE_SOURCE_DIR}/tests/systemd/systemd_play.lua)
set_tests_properties(systemd_lab PROPERTIES FIXTURES_REQUIRED lab LABELS "lab" TIMEOUT 120
                     ENVIRONMENT "KCMRUN_LAB_DIR=${CMAKE_BINARY_DIR}/lab"
                     PASS_REGULAR_EXPRESSION "failing unit reported with its journal"
                     FAIL_REGULAR_EXPRESSION "FAILED|UNREACHABLE")
