# kcmrun as a user gets it: `cmake --install` into a temporary prefix, the Debian package
# unpacked into a temporary root, and the default inventory / playbook discovery.
set(_inst ${CMAKE_SOURCE_DIR}/tests/install/test_install.sh)
set(KCM_INSTALL_ENV "KCMRUN=$<TARGET_FILE:kcmrun>" "KCM_BUILD_DIR=${CMAKE_BINARY_DIR}"
    "KCM_SOURCE_DIR=${CMAKE_SOURCE_DIR}" "KCM_VERSION=${PROJECT_VERSION}"
    "KCM_SANITIZE=$<BOOL:${KCM_SANITIZE}>")

# Installed tree: layout, no source/build path in the binary, data found from bin/, playbooks
# by name, completion, man page; no inventory -> exit 2 listing what was tried.
foreach(case tree discovery noinventory)
  add_test(NAME install_${case} COMMAND bash ${_inst} ${case})
  set_tests_properties(install_${case} PROPERTIES LABELS "unit;install" TIMEOUT 120
                       ENVIRONMENT "${KCM_INSTALL_ENV}")
endforeach()
# The .deb: cpack, dpkg-deb -x into a temporary root, run from there.
add_test(NAME install_deb COMMAND bash ${_inst} deb)
set_tests_properties(install_deb PROPERTIES LABELS "unit;install" TIMEOUT 300
                     ENVIRONMENT "${KCM_INSTALL_ENV}")
# lintian on that .deb: no error (.ci/setup.sh installs lintian).
add_test(NAME install_lintian COMMAND bash ${_inst} lintian)
set_tests_properties(install_lintian PROPERTIES LABELS "unit;install" TIMEOUT 300
                     ENVIRONMENT "${KCM_INSTALL_ENV}")

# The installed kcmrun brings up a lab of its own (state under the build tree) from an empty
# folder and deploys the installed controller-manager playbook to it without -i. Serial: a
# second lab booting next to the fixture's would starve both on this machine's cores.
add_test(NAME install_lab COMMAND bash ${_inst} lab)
set_tests_properties(install_lab PROPERTIES LABELS "lab;install" RUN_SERIAL TRUE TIMEOUT 600
                     ENVIRONMENT "${KCM_INSTALL_ENV};KCMRUN_LAB_DIR=${CMAKE_BINARY_DIR}/lab-install")

# The README's command on the fixture lab, from the repo root, without -i. After the e2e
# cases (they start from a fresh lab); a rerun of the playbook there converges.
add_test(NAME install_readme COMMAND bash ${_inst} readme)
set_tests_properties(install_readme PROPERTIES LABELS "lab;install"
                     TIMEOUT 300
                     ENVIRONMENT "${KCM_INSTALL_ENV}")
kcm_use_lab(lab install_readme)
