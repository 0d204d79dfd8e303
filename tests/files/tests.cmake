# Files at real size (issue 14): streaming, hashing on the node, bounded
# memory, kill -9 mid-transfer, cert/key pairs, --diff of large files, become.
# They shape links, bind-mount and add a user inside the nodes: serial.
foreach(case big killed pair diff become)
  add_test(NAME files_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/files/test_files.sh ${case})
  set_tests_properties(files_${case} PROPERTIES LABELS "files;lab" TIMEOUT 180
                       ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>")
  kcm_use_lab(lab_misc files_${case})
endforeach()

# HTTPS connection reuse against an apiserver stand-in of its own on 127.0.0.1.
add_test(NAME files_https
         COMMAND ${CMAKE_SOURCE_DIR}/tests/kube/with_apiserver.sh $<TARGET_FILE:kcmrun> ${CMAKE_SOURCE_DIR}/tests/files/test_https.lua)
set_tests_properties(files_https PROPERTIES LABELS "unit;files" TIMEOUT 60)
