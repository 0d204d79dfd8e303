# End-to-end tests of the controller-manager playbook on the lab; they run in
# this order and change the lab, so each depends on the previous one.
foreach(case check-fresh deploy rerun flag leaseguard envsh customize poweroff scheduler)
  add_test(NAME e2e_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/e2e/test_e2e.sh ${case})
  set_tests_properties(e2e_${case} PROPERTIES LABELS "e2e;lab" TIMEOUT 300
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
  kcm_use_lab(lab e2e_${case})
endforeach()
