# kcm.kube, the http module and the cluster stand-ins.
# "unit": an apiserver stand-in of their own on 127.0.0.1 (with_apiserver.sh starts and stops it).
foreach(case http kube)
  add_test(NAME kube_${case}
           COMMAND ${CMAKE_SOURCE_DIR}/tests/kube/with_apiserver.sh ${KCMRUN} ${CMAKE_SOURCE_DIR}/tests/kube/test_${case}.lua)
  set_tests_properties(kube_${case} PROPERTIES LABELS "unit" TIMEOUT 120)
endforeach()
add_test(NAME kube_check
         COMMAND ${CMAKE_SOURCE_DIR}/tests/kube/with_apiserver.sh ${KCMRUN} --check ${CMAKE_SOURCE_DIR}/tests/kube/test_kube_check.lua)
set_tests_properties(kube_check PROPERTIES LABELS "unit" TIMEOUT 120)

# The kube-controller-manager stand-in as a process (no systemd): flags by version, bad
# certificates, leader election and failover, /metrics 500/200/403, apiserver restart.
add_test(NAME kube_standin
         COMMAND ${CMAKE_SOURCE_DIR}/tests/kube/with_apiserver.sh bash ${CMAKE_SOURCE_DIR}/tests/kube/test_standin.sh ${KCMRUN})
set_tests_properties(kube_standin PROPERTIES LABELS "unit" TIMEOUT 180)

# The stand-ins on the lab's nodes under real systemd (needs the lab fixture; tests/lab/tests.cmake
# defines it, and may be included after this file).
if(NOT DEFINED KCM_LAB_ENV)
  set(KCM_LAB_ENV "KCMRUN=${KCMRUN}")
endif()
add_test(NAME kube_lab_standins COMMAND bash ${CMAKE_SOURCE_DIR}/tests/kube/test_lab_standins.sh)
set_tests_properties(kube_lab_standins PROPERTIES LABELS "lab"
                     ENVIRONMENT "${KCM_LAB_ENV}" TIMEOUT 240)
kcm_use_lab(lab kube_lab_standins)
