# What `cmake --install build [--prefix P]` puts where, and the Debian package (cpack -G DEB).
#   P/bin/kcmrun
#   P/share/kcmrun/lab/...                 the lab: scripts and stand-ins
#   P/share/kcmrun/playbooks/...           playbooks and their templates
#   P/share/man/man1/kcmrun.1.gz
#   P/share/bash-completion/completions/kcmrun
#   P/share/doc/kcmrun/{copyright,changelog.gz}
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

# Debian wants, in /usr/share/doc/<package>: the copyright file as is, and the changelog
# (of a native package: changelog.gz, Debian's format) gzipped like the man page. The
# changelog's top entry restates the version: checked here so the two cannot drift.
file(STRINGS ${CMAKE_SOURCE_DIR}/docs/debian-changelog KCM_CHANGELOG_TOP LIMIT_COUNT 1)
if(NOT KCM_CHANGELOG_TOP MATCHES "^kcmrun \\(${PROJECT_VERSION}\\) ")
  message(FATAL_ERROR "docs/debian-changelog:1: the top entry is '${KCM_CHANGELOG_TOP}', expected "
          "'kcmrun (${PROJECT_VERSION}) ...' (the project's version): add an entry for ${PROJECT_VERSION}")
endif()
set(KCM_CHANGELOG_GZ ${CMAKE_BINARY_DIR}/changelog.gz)
add_custom_command(OUTPUT ${KCM_CHANGELOG_GZ}
  COMMAND gzip -9nc ${CMAKE_SOURCE_DIR}/docs/debian-changelog > ${KCM_CHANGELOG_GZ}
  DEPENDS ${CMAKE_SOURCE_DIR}/docs/debian-changelog VERBATIM)
add_custom_target(kcmrun_changelog ALL DEPENDS ${KCM_CHANGELOG_GZ})
install(FILES ${KCM_CHANGELOG_GZ} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${CMAKE_SOURCE_DIR}/docs/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Whoever builds the package for others puts their own address here.
set(KCM_DEB_MAINTAINER "kcmrun maintainers <maintainers@kcmrun.example>" CACHE STRING
    "Maintainer field of the Debian package")
set(CPACK_PACKAGE_NAME kcmrun)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${KCM_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "deployment engine for hand-built Kubernetes clusters, with a local lab")
# Lines under 80 columns: dpkg shows them as written.
set(CPACK_PACKAGE_DESCRIPTION "kcmrun runs Lua playbooks step by step, each step in parallel across
nodes over SSH, with cfssl-compatible PKI, strict templates and systemd
control built in. Its lab brings up local nodes (real sshd and systemd in
namespaces) to rehearse a deployment.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)          # kcmrun_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE amd64)
# Depends: what kcmrun itself needs. dpkg-shlibdeps derives the libraries the binary links
# (libc, libssh, Lua 5.4, OpenSSL 3, libyaml; lua-cjson is linked in statically), versioned.
# libcurl is dlopen'ed as libcurl.so.4 on the first HTTPS request (engine/curl_loader.c):
# no ELF dependency, but the kube and leader steps need it. kcmrun also runs bash (the lab's
# scripts, environment.sh inventories), env and /bin/sh: Essential, so not named.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libcurl4")
# Recommends: what `kcmrun lab up` runs on this machine (lab/kcmlab.sh checks them and names
# the package of each missing one): ip, the nodes' sshd and systemd, ssh and ssh-keygen; the
# cluster stand-ins run python3, openssl and curl. util-linux and coreutils are Essential.
# Then what the playbooks use when present, on the lab's nodes (they share this machine's
# /usr): etcd, etcdctl, sudo (become), cfssl, kubectl.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS
  "iproute2, openssh-server, openssh-client, systemd, python3, openssl, curl, etcd-server, etcd-client, sudo, golang-cfssl, kubernetes-client")
set(CPACK_GENERATOR DEB)
include(CPack)
