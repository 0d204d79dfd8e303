# etcd (04.部署etcd集群) on the lab with Debian's real etcd: the cases run in
# this order and change the lab, so each depends on the previous one.
set(prev "")
foreach(case masked deploy rerun rolling ha forks1)
  add_test(NAME etcd_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/etcd/test_etcd.sh ${case})
  set_tests_properties(etcd_${case} PROPERTIES LABELS "etcd;lab" TIMEOUT 300
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
  # a lab of its own (not the controller-manager e2e chain's: its checksums of
  # /data/k8s must not see a running etcd's files change)
  if(prev)
    set_tests_properties(etcd_${case} PROPERTIES DEPENDS etcd_${prev})
  endif()
  set(prev ${case})
  kcm_use_lab(lab_misc etcd_${case})
endforeach()
