# etcd (04.部署etcd集群) on the lab with Debian's real etcd: the cases run in
# this order and change the lab, so each depends on the previous one.
set(prev "")
foreach(case masked deploy rerun rolling ha forks1)
  add_test(NAME etcd_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/etcd/test_etcd.sh ${case})
  set_tests_properties(etcd_${case} PROPERTIES FIXTURES_REQUIRED lab LABELS "etcd;lab" RUN_SERIAL TRUE TIMEOUT 300
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>;KCMRUN_LAB_DIR=${CMAKE_BINARY_DIR}/lab")
  if(prev)
    set_tests_properties(etcd_${case} PROPERTIES DEPENDS etcd_${prev})
  else()
    # after the controller-manager e2e chain: its checksums of /data/k8s must not
    # see a running etcd's files change, and its power-off must not hit a member
    set_tests_properties(etcd_${case} PROPERTIES DEPENDS e2e_scheduler)
  endif()
  set(prev ${case})
endforeach()
