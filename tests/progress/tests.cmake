# What a run waits for (issue 27, point 4): progress lines, on the control machine.
foreach(case plain fast quiet json tty)
  add_test(NAME progress_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/progress/test_progress.sh ${case})
  set_tests_properties(progress_${case} PROPERTIES LABELS "unit" TIMEOUT 60
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
endforeach()
# A transfer's bytes and rate, on the lab (node2's link shaped, then restored).
add_test(NAME progress_transfer COMMAND bash ${CMAKE_SOURCE_DIR}/tests/progress/test_progress.sh transfer)
set_tests_properties(progress_transfer PROPERTIES LABELS "lab" TIMEOUT 180
                     ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
kcm_use_lab(lab_misc progress_transfer)
