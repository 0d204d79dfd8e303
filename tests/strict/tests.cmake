# Every mistake is an error (issue 25): hostile inputs refused with one line,
# exit 2 or 3. No lab: each refusal comes before a node is reached.
foreach(case keys bool port outpath basicauth errobj extravars env)
  add_test(NAME strict_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/strict/test_strict.sh ${case})
  set_tests_properties(strict_${case} PROPERTIES LABELS "unit" TIMEOUT 120
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
endforeach()
# --diff needs a node: the throwaway sshd of tests/ssh (fixture ssh_local)
add_test(NAME strict_redact COMMAND bash ${CMAKE_SOURCE_DIR}/tests/strict/test_strict.sh redact)
set_tests_properties(strict_redact PROPERTIES FIXTURES_REQUIRED ssh_local LABELS "ssh" TIMEOUT 120
                     ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>;KCM_SSH_DIR=${CMAKE_BINARY_DIR}/ssh-test")
