# ssh_config read exactly as OpenSSH reads it (issue 25), without a lab:
# `ssh -G` is the oracle for 20+ configs; hostile configs are refused and
# Match exec / its ProxyCommand never run (a real connection attempt).
# HostKeyAlias with a real sshd: tests/ssh (ssh_hostkeyalias).
foreach(t compare_g refusals)
  add_test(NAME sshcfg_${t} COMMAND sh -c "d=$(mktemp -d) && SSHCFG_DIR=$d \"$0\" \"$1\"; rc=$?; rm -rf \"$d\"; exit $rc"
           ${KCMRUN} ${CMAKE_SOURCE_DIR}/tests/sshcfg/${t}.lua)
  set_tests_properties(sshcfg_${t} PROPERTIES LABELS "unit" TIMEOUT 120)
endforeach()
