# What a run waits for (issue 27, point 4): progress lines, on the control machine.
foreach(case plain fast quiet json tty)
  add_test(NAME progress_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/progress/test_progress.sh ${case})
  set_tests_properties(progress_${case} PROPERTIES LABELS "unit" TIMEOUT 60
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
endforeach()
# On the lab: a transfer's bytes and rate (node2's link shaped, then
# restored), a real unit's gate (kcm.systemd wait_active) that waits on node2.
foreach(case transfer unit)
  add_test(NAME progress_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/progress/test_progress.sh ${case})
  set_tests_properties(progress_${case} PROPERTIES LABELS "lab" TIMEOUT 180
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
  kcm_use_lab(lab_misc progress_${case})
endforeach()
