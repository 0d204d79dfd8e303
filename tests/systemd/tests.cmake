# The exit code counts and the last line must be there (a PASS_REGULAR_EXPRESSION
# would make ctest ignore the exit code).
add_test(NAME systemd_lab COMMAND bash -c "eval \"$(\"$1\" lab env)\" && \"$1\" --no-lock -i \"$KCMRUN_LAB_INVENTORY\" \"$2\" >\"$3\" 2>&1; rc=$?; cat \"$3\"; [ $rc = 0 ] || { echo \"FAIL: exit code $rc\"; exit 1; }; grep -q 'failing unit reported with its journal' \"$3\" || { echo 'FAIL: the last check did not report'; exit 1; }" systemd_lab
         $<TARGET_FILE:kcmrun> ${CMAKE_SOURCE_DIR}/tests/systemd/systemd_play.lua ${CMAKE_BINARY_DIR}/systemd_lab.out)
set_tests_properties(systemd_lab PROPERTIES LABELS "lab" TIMEOUT 120
                     FAIL_REGULAR_EXPRESSION "FAILED|UNREACHABLE")
kcm_use_lab(lab systemd_lab)
