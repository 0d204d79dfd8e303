# The lab fixture: `lab_up` brings a 3-node lab up before any test that requires the fixture
# "lab", `lab_down` always removes it afterwards (also when tests fail). Tests that use it:
#   FIXTURES_REQUIRED lab, ENVIRONMENT "${KCM_LAB_ENV}" (then `kcmrun lab env` prints the paths)
# The lab's state lives under the build tree; its name derives from that path, so labs of two
# build trees (and the user's own lab) can be up at the same time.
set(KCM_LAB_DIR ${CMAKE_BINARY_DIR}/lab)
set(KCM_LAB_ENV "KCMRUN=${KCMRUN}" "KCMRUN_LAB_DIR=${KCM_LAB_DIR}")

# A lab left over by an interrupted run is removed first.
add_test(NAME lab_up COMMAND bash -c "\"$1\" lab down >/dev/null 2>&1; exec \"$1\" lab up --nodes 3" lab_up ${KCMRUN})
set_tests_properties(lab_up PROPERTIES FIXTURES_SETUP lab LABELS "lab" ENVIRONMENT "${KCM_LAB_ENV}" TIMEOUT 300)
add_test(NAME lab_down COMMAND ${KCMRUN} lab down)
set_tests_properties(lab_down PROPERTIES FIXTURES_CLEANUP lab LABELS "lab" ENVIRONMENT "${KCM_LAB_ENV}" TIMEOUT 120)

foreach(case ssh isolation systemd)
  add_test(NAME lab_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lab/test_lab.sh ${case})
  set_tests_properties(lab_${case} PROPERTIES FIXTURES_REQUIRED lab LABELS "lab"
                       ENVIRONMENT "${KCM_LAB_ENV}" TIMEOUT 120)
endforeach()

# The inventory.lua and environment.sh the lab wrote load in kcmrun and agree.
add_test(NAME lab_inventory COMMAND ${KCMRUN} ${CMAKE_SOURCE_DIR}/tests/lab/test_inventory.lua)
set_tests_properties(lab_inventory PROPERTIES FIXTURES_REQUIRED lab LABELS "lab"
                     ENVIRONMENT "${KCM_LAB_ENV}" TIMEOUT 60)

# Powers a node off and on: no other test may use the lab meanwhile.
add_test(NAME lab_stopstart COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lab/test_lab.sh stopstart)
set_tests_properties(lab_stopstart PROPERTIES FIXTURES_REQUIRED lab LABELS "lab" RUN_SERIAL TRUE
                     ENVIRONMENT "${KCM_LAB_ENV}" TIMEOUT 180)

# A lab of its own, compared against a snapshot of the host: serial, so nothing else changes
# the host's links, mounts or cgroups meanwhile.
add_test(NAME lab_updown COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lab/test_lab.sh updown)
set_tests_properties(lab_updown PROPERTIES LABELS "lab" RUN_SERIAL TRUE TIMEOUT 300
                     ENVIRONMENT "KCMRUN=${KCMRUN};KCMRUN_LAB_TEST_DIR=${CMAKE_BINARY_DIR}/lab-updown")

add_test(NAME lab_nonroot COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lab/test_lab.sh nonroot)
set_tests_properties(lab_nonroot PROPERTIES LABELS "lab" ENVIRONMENT "KCMRUN=${KCMRUN}" TIMEOUT 30)
