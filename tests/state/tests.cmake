# Operator-proof state (issue 16, points 1-5) on the lab: write-ahead notify
# state across kill -9, state and locks shared by every inventory form,
# environment.sh values, --limit and members, per-node vars. The cases change
# the lab (links, binaries, units) and put it back: they run serially.
# After the e2e cases, which want a fresh lab (state_limit empties the controller manager's files).
foreach(case killrename killtransfer killbetween crossinv locks envsh limit nodevars corrupt anyone folders certs interrupted)
  add_test(NAME state_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/state/test_state.sh ${case})
  set_tests_properties(state_${case} PROPERTIES LABELS "state;lab" TIMEOUT 300
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
  kcm_use_lab(lab_state state_${case})
endforeach()

# Without a lab: the state key (ssh_config applied), members vs targets, variable layers.
foreach(case identity members cmdline hygiene)
  add_test(NAME state_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/state/test_local.sh ${case})
  set_tests_properties(state_${case} PROPERTIES LABELS "unit;state" TIMEOUT 60
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
endforeach()
