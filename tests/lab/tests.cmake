# The suite's labs (cmake/labtests.cmake): each a fixture of its own, so the
# groups that change a lab run beside each other under ctest -j; the order
# within each lab is tests/lab/order.cmake.
#   lab         the controller-manager e2e chain, become, the lab's own tests
#   lab_state   state (write-ahead across kill -9, locks, inventory forms)
#   lab_faults  faults (links, sshd, the apiserver, mounts, shaping)
#   lab_misc    etcd (real etcd), signals, files, ssh against a lab
#   lab_etcd4   etcd's member lifecycle on 4 nodes (a 4th joins, then leaves)
# Tests of one lab hold its lock; `kcmrun lab env` prints the paths.
kcm_lab_fixture(lab)
kcm_lab_fixture(lab_state)
kcm_lab_fixture(lab_faults)
kcm_lab_fixture(lab_misc)
kcm_lab_fixture(lab_etcd4 4)
set(KCM_LAB_ENV "KCMRUN=${KCMRUN}")

foreach(case ssh isolation systemd)
  add_test(NAME lab_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lab/test_lab.sh ${case})
  set_tests_properties(lab_${case} PROPERTIES LABELS "lab" ENVIRONMENT "${KCM_LAB_ENV}" TIMEOUT 120)
  kcm_use_lab(lab lab_${case})
endforeach()

# The inventory.lua and environment.sh the lab wrote load in kcmrun and agree.
add_test(NAME lab_inventory COMMAND ${KCMRUN} ${CMAKE_SOURCE_DIR}/tests/lab/test_inventory.lua)
set_tests_properties(lab_inventory PROPERTIES LABELS "lab" ENVIRONMENT "${KCM_LAB_ENV}" TIMEOUT 60)
kcm_use_lab(lab lab_inventory)

# Powers a node off and on: the lab's lock keeps every other test off it meanwhile.
add_test(NAME lab_stopstart COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lab/test_lab.sh stopstart)
set_tests_properties(lab_stopstart PROPERTIES LABELS "lab" ENVIRONMENT "${KCM_LAB_ENV}" TIMEOUT 180)
kcm_use_lab(lab lab_stopstart)

# A lab of its own, compared against a snapshot of the host: serial, so nothing else changes
# the host's links, mounts or cgroups meanwhile.
add_test(NAME lab_updown COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lab/test_lab.sh updown)
set_tests_properties(lab_updown PROPERTIES LABELS "lab" RUN_SERIAL TRUE TIMEOUT 300
                     ENVIRONMENT "KCMRUN=${KCMRUN};KCMRUN_LAB_TEST_DIR=${CMAKE_BINARY_DIR}/lab-updown")

# No lab is made: lab up with ip and ssh-keygen off PATH names their packages and stops.
add_test(NAME lab_missingtool COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lab/test_lab.sh missingtool)
set_tests_properties(lab_missingtool PROPERTIES LABELS "lab" ENVIRONMENT "KCMRUN=${KCMRUN}" TIMEOUT 30)

add_test(NAME lab_nonroot COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lab/test_lab.sh nonroot)
set_tests_properties(lab_nonroot PROPERTIES LABELS "lab" ENVIRONMENT "KCMRUN=${KCMRUN}" TIMEOUT 30)
