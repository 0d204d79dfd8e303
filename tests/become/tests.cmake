# become (sudo) and login settings.
# Without a lab: ssh_config read like OpenSSH (ssh -G is the oracle), settings precedence.
add_test(NAME become_ssh_config COMMAND bash ${CMAKE_SOURCE_DIR}/tests/become/test_ssh_config.sh)
set_tests_properties(become_ssh_config PROPERTIES LABELS "become" ENVIRONMENT "KCMRUN=${KCMRUN}" TIMEOUT 60)
add_test(NAME become_precedence COMMAND ${KCMRUN} ${CMAKE_SOURCE_DIR}/tests/become/precedence.lua)
set_tests_properties(become_precedence PROPERTIES LABELS "become" TIMEOUT 60)
add_test(NAME become_cmdline COMMAND ${KCMRUN} ${CMAKE_SOURCE_DIR}/tests/become/cmdline.lua)
set_tests_properties(become_cmdline PROPERTIES LABELS "become;unit" TIMEOUT 60)

# On the lab, in order (each depends on the previous), after the e2e cases (which want a
# fresh lab): users deploy/deploypw, every primitive through sudo, the errors, the
# controller-manager playbook as deploy, and a deployment through ssh_config aliases.
foreach(case users primitives denied password noprompt deploy rerun checkdiff alias)
  add_test(NAME become_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/become/test_become.sh ${case})
  set_tests_properties(become_${case} PROPERTIES LABELS "become;lab"
                       TIMEOUT 300 ENVIRONMENT "KCMRUN=${KCMRUN}")
  kcm_use_lab(lab become_${case})
endforeach()
