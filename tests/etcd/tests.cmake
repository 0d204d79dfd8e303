# etcd (04.部署etcd集群) on the lab with Debian's real etcd: the cases run in
# the order of tests/lab/order.cmake on a lab of their own (not the
# controller-manager e2e chain's: its checksums of /data/k8s must not see a
# running etcd's files change).
foreach(case masked deploy rerun rolling ha guard crashloop checkmember members forks1 gone)
  add_test(NAME etcd_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/etcd/test_etcd.sh ${case})
  set_tests_properties(etcd_${case} PROPERTIES LABELS "etcd;lab" TIMEOUT 300
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
  kcm_use_lab(lab_misc etcd_${case})
endforeach()

# a 4th node joining the running cluster, then leaving it again: a lab of
# its own with 4 nodes (the suite's other labs have 3)
foreach(case fourth remove)
  add_test(NAME etcd_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/etcd/test_etcd4.sh ${case})
  set_tests_properties(etcd_${case} PROPERTIES LABELS "etcd;lab" TIMEOUT 400 RUN_SERIAL TRUE
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
  kcm_use_lab(lab_etcd4 etcd_${case})
endforeach()
