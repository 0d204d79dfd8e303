# PKI: cfssl-compatible certificates, checked against real cfssl and openssl.
add_test(NAME pki_names COMMAND ${KCMRUN} ${CMAKE_SOURCE_DIR}/tests/pki/names.lua)
set_tests_properties(pki_names PROPERTIES LABELS "unit" TIMEOUT 60)
foreach(case oracle idempotent errors)
  add_test(NAME pki_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/pki/test_${case}.sh)
  set_tests_properties(pki_${case} PROPERTIES LABELS "unit" ENVIRONMENT "KCMRUN=${KCMRUN}" TIMEOUT 300)
endforeach()
