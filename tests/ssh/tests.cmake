# ssh transport and node primitives.
# Label "ssh": against a throwaway sshd on 127.0.0.1 (fixture ssh_local, no lab needed).
# Label "lab": against the 3-node lab (fixture lab from tests/lab/tests.cmake).
set(KCM_SSH_TEST_DIR ${CMAKE_BINARY_DIR}/ssh-test)
# A port of its own per build tree (several trees run their sshd at once on
# this machine; with one fixed port a test met another tree's sshd, whose
# host key kcmrun rightly refused).
string(MD5 _kcm_bin_hash "${CMAKE_BINARY_DIR}")
string(SUBSTRING "${_kcm_bin_hash}" 0 4 _kcm_bin_hash)
math(EXPR KCM_SSH_TEST_PORT "40000 + 0x${_kcm_bin_hash} % 20000")
set(KCM_SSH_ENV "KCMRUN=${KCMRUN}" "KCM_SSH_DIR=${KCM_SSH_TEST_DIR}")

add_test(NAME ssh_local_up COMMAND bash -c "bash \"$1\" down \"$2\"; exec bash \"$1\" up \"$2\" \"$3\""
         ssh_local_up ${CMAKE_SOURCE_DIR}/tests/ssh/sshd.sh ${KCM_SSH_TEST_DIR} ${KCM_SSH_TEST_PORT})
set_tests_properties(ssh_local_up PROPERTIES FIXTURES_SETUP ssh_local LABELS "ssh" TIMEOUT 60)
add_test(NAME ssh_local_down COMMAND bash ${CMAKE_SOURCE_DIR}/tests/ssh/sshd.sh down ${KCM_SSH_TEST_DIR})
set_tests_properties(ssh_local_down PROPERTIES FIXTURES_CLEANUP ssh_local LABELS "ssh" TIMEOUT 60)

foreach(case run argv files tempmode hostkeys auth unreachable shared config lost target hostkeyalias)
  add_test(NAME ssh_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/ssh/run.sh local ${case})
  set_tests_properties(ssh_${case} PROPERTIES FIXTURES_REQUIRED ssh_local LABELS "ssh"
                       ENVIRONMENT "${KCM_SSH_ENV}" TIMEOUT 120)
endforeach()
foreach(case check interrupt silent agent)
  add_test(NAME ssh_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/ssh/run.sh ${case})
  set_tests_properties(ssh_${case} PROPERTIES FIXTURES_REQUIRED ssh_local LABELS "ssh"
                       ENVIRONMENT "${KCM_SSH_ENV}" TIMEOUT 180)
endforeach()
# Counts logins in the shared sshd log: nothing else may log in meanwhile.
add_test(NAME ssh_onecon COMMAND bash ${CMAKE_SOURCE_DIR}/tests/ssh/run.sh onecon)
set_tests_properties(ssh_onecon PROPERTIES FIXTURES_REQUIRED ssh_local LABELS "ssh" RUN_SERIAL TRUE
                     ENVIRONMENT "${KCM_SSH_ENV}" TIMEOUT 120)

set(KCM_SSH_LAB_ENV "KCMRUN=${KCMRUN}")
foreach(case lab lab_interrupt)
  add_test(NAME ssh_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/ssh/run.sh ${case})
  set_tests_properties(ssh_${case} PROPERTIES LABELS "lab"
                       ENVIRONMENT "${KCM_SSH_LAB_ENV}" TIMEOUT 180)
  kcm_use_lab(lab_misc ssh_${case})
endforeach()
# Login counting and powering a node off: the lab's lock keeps every other test off it.
foreach(case lab_onecon lab_unreachable)
  add_test(NAME ssh_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/ssh/run.sh ${case})
  set_tests_properties(ssh_${case} PROPERTIES LABELS "lab"
                       ENVIRONMENT "${KCM_SSH_LAB_ENV}" TIMEOUT 180)
  kcm_use_lab(lab_misc ssh_${case})
endforeach()
