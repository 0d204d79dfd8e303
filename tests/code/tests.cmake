# Code shape (issue 13): no function over 80 lines unless a comment says why.
add_test(NAME code_function_length COMMAND bash ${CMAKE_SOURCE_DIR}/tests/code/function_length.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(code_function_length PROPERTIES LABELS "unit" TIMEOUT 60)
