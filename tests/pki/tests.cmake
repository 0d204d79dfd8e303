# PKI: cfssl-compatible certificates, checked against real cfssl and openssl.
foreach(case oracle idempotent errors)
  add_test(NAME pki_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/pki/test_${case}.sh)
  set_tests_properties(pki_${case} PROPERTIES LABELS "unit" ENVIRONMENT "KCMRUN=${KCMRUN}" TIMEOUT 300)
endforeach()
