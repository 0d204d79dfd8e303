# etcd (04.部署etcd集群) on the lab with Debian's real etcd: the cases run in
# the order of tests/lab/order.cmake on a lab of their own (not the
# controller-manager e2e chain's: its checksums of /data/k8s must not see a
# running etcd's files change).
foreach(case masked deploy rerun rolling ha guard crashloop members forks1 gone)
  add_test(NAME etcd_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/etcd/test_etcd.sh ${case})
  set_tests_properties(etcd_${case} PROPERTIES LABELS "etcd;lab" TIMEOUT 300
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
  kcm_use_lab(lab_misc etcd_${case})
endforeach()

# a 4th node joining: a lab of its own with 4 nodes (up and down in the test)
add_test(NAME etcd_fourth COMMAND bash ${CMAKE_SOURCE_DIR}/tests/etcd/test_etcd4.sh)
set_tests_properties(etcd_fourth PROPERTIES LABELS "etcd;lab" TIMEOUT 400 RUN_SERIAL TRUE
                     ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>;KCMRUN_LAB_DIR=${CMAKE_BINARY_DIR}/lab-etcd4")
