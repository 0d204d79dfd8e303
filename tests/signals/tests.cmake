# Interrupts, strictness and error paths (issue 16, points 6-10).
# Without the lab: loading-time interrupts and the one-line errors.
foreach(case loop strict errors)
  add_test(NAME signals_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/signals/test_signals.sh ${case})
  set_tests_properties(signals_${case} PROPERTIES LABELS "signals" TIMEOUT 120
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
endforeach()
# On the lab: remote commands under SIGINT/SIGTERM, timeouts, step errors, -v, --log-json, TLS.
foreach(case twosig grace abandon timeout steperr verbose logjson tls)
  add_test(NAME signals_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/signals/test_signals.sh ${case})
  set_tests_properties(signals_${case} PROPERTIES LABELS "signals;lab" TIMEOUT 180
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
  kcm_use_lab(lab_misc signals_${case})
endforeach()
