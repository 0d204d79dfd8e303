# The README's "Writing playbooks" example, extracted from README.md, on the lab.
add_test(NAME docs_readme_example COMMAND bash ${CMAKE_SOURCE_DIR}/tests/docs/test_readme_example.sh)
set_tests_properties(docs_readme_example PROPERTIES LABELS "lab" TIMEOUT 180
                     ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
kcm_use_lab(lab docs_readme_example)
