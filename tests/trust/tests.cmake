# Trust boundaries (issue #17): one test per promise, each with the hostile
# input and the refusal or redaction it must meet. Label "unit" needs
# nothing; "ssh" uses the throwaway sshd of tests/ssh (fixture ssh_local).
set(_trust ${CMAKE_SOURCE_DIR}/tests/trust)
foreach(case user http modules outputs csr redact coredump)
  add_test(NAME trust_${case} COMMAND bash ${_trust}/test_trust.sh ${case})
  set_tests_properties(trust_${case} PROPERTIES LABELS "unit;trust" TIMEOUT 120
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
endforeach()
foreach(case hostkeys env diff)
  add_test(NAME trust_${case} COMMAND bash ${_trust}/test_trust.sh ${case})
  set_tests_properties(trust_${case} PROPERTIES FIXTURES_REQUIRED ssh_local LABELS "ssh;trust" TIMEOUT 120
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>;KCM_SSH_DIR=${CMAKE_BINARY_DIR}/ssh-test")
endforeach()
# Files from the current folder, password files (issue 25).
foreach(case code secret)
  add_test(NAME trust_localfiles_${case} COMMAND bash ${_trust}/test_localfiles.sh ${case})
  set_tests_properties(trust_localfiles_${case} PROPERTIES LABELS "unit;trust" TIMEOUT 120
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
endforeach()
# Redaction complete (the 14 shapes) and linear (hostile sizes timed).
add_test(NAME trust_redact_shapes COMMAND ${KCMRUN} ${_trust}/redact_shapes.lua)
set_tests_properties(trust_redact_shapes PROPERTIES LABELS "unit;trust" TIMEOUT 120)
