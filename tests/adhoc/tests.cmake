# Ad-hoc commands, --limit patterns and facts on the lab's real nodes (issue 27).
foreach(case run limit patterns facts putget getbig which become down varorigin)
  add_test(NAME adhoc_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/adhoc/test_adhoc.sh ${case})
  set_tests_properties(adhoc_${case} PROPERTIES LABELS "adhoc;lab" TIMEOUT 180
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
  kcm_use_lab(lab_misc adhoc_${case})
endforeach()
