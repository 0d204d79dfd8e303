# Faults, bad input and hostile input against the lab (issue 8, points 1-8).
# Every case changes the lab (links, sshd, the apiserver, mounts, shaping) and
# puts it back on exit: they run serially, never beside another lab test.
foreach(case linkdown cmdtimeout sshd apiserver diskfull signal lock secrets insecure hostile)
  add_test(NAME faults_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/faults/test_faults.sh ${case})
  set_tests_properties(faults_${case} PROPERTIES LABELS "faults;lab" TIMEOUT 300
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
  kcm_use_lab(lab_faults faults_${case})
endforeach()
