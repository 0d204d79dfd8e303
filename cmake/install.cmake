# What `cmake --install build [--prefix P]` puts where, and the Debian package (cpack -G DEB).
#   P/bin/kcmrun
#   P/share/kcmrun/lab/...                 the lab: scripts and stand-ins
#   P/share/kcmrun/playbooks/...           playbooks and their templates
#   P/share/man/man1/kcmrun.1.gz
#   P/share/bash-completion/completions/kcmrun
# The binary finds share/kcmrun from its own location (engine/main.c), so P is free.
include(GNUInstallDirs)

install(TARGETS kcmrun DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/lab/ DESTINATION ${CMAKE_INSTALL_DATADIR}/kcmrun/lab
        USE_SOURCE_PERMISSIONS PATTERN "__pycache__" EXCLUDE PATTERN "*.pyc" EXCLUDE)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/playbooks/ DESTINATION ${CMAKE_INSTALL_DATADIR}/kcmrun/playbooks)

# The man page carries the project's version; Debian ships man pages gzipped (-n: no name
# or time stamp, so the package is reproducible).
configure_file(${CMAKE_SOURCE_DIR}/docs/kcmrun.1.in ${CMAKE_BINARY_DIR}/kcmrun.1 @ONLY)
set(KCM_MAN_GZ ${CMAKE_BINARY_DIR}/kcmrun.1.gz)
add_custom_command(OUTPUT ${KCM_MAN_GZ}
  COMMAND gzip -9nc ${CMAKE_BINARY_DIR}/kcmrun.1 > ${KCM_MAN_GZ}
  DEPENDS ${CMAKE_BINARY_DIR}/kcmrun.1 VERBATIM)
add_custom_target(kcmrun_man ALL DEPENDS ${KCM_MAN_GZ})
install(FILES ${KCM_MAN_GZ} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_SOURCE_DIR}/docs/kcmrun.bash-completion
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME kcmrun)

set(CPACK_PACKAGE_NAME kcmrun)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "kcmrun maintainers <kcmrun@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "deployment engine for hand-built Kubernetes clusters, with a local lab")
set(CPACK_PACKAGE_DESCRIPTION "kcmrun runs Lua playbooks step by step, each step in parallel across nodes over SSH,
with cfssl-compatible PKI, strict templates and systemd control built in.
Its lab brings up local nodes (real sshd and systemd in namespaces) to rehearse a deployment.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)          # kcmrun_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE amd64)
# Linked: libssh, Lua 5.4, OpenSSL 3, libyaml (lua-cjson is linked in statically).
# libcurl is dlopen'ed as libcurl.so.4 on the first HTTPS request (engine/curl_loader.c):
# no ELF dependency, but the kube and leader steps need it, so Depends too.
# The lab: iproute2 (ip), util-linux (nsenter, unshare, setpriv, flock), openssh-server
# (the nodes' sshd), openssh-client (ssh-keygen, lab ssh), systemd (each node's PID 1),
# python3 (the stand-ins), procps; bash for the lab scripts and environment.sh inventories.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "libc6 (>= 2.34), libssh-4, liblua5.4-0, libssl3, libyaml-0-2, libcurl4, bash, openssh-client, iproute2, util-linux, procps, python3, systemd, openssh-server")
# The lab's cluster stand-ins and the playbooks' own checks use these when present.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "etcd-server, etcd-client, sudo, golang-cfssl, kubernetes-client")
set(CPACK_GENERATOR DEB)
include(CPack)
