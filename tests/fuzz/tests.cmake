# libFuzzer targets for the parsers of outside input not covered in
# tests/template (issue 8 point 10). -DKCM_FUZZ=ON with clang, label "fuzz",
# 60 s each under ctest. The Lua-level targets (tests/fuzz/<target>.lua
# drivers run by fuzz_lua.c) need the whole engine, so it is built once more
# as kcmcore_fuzz with the fuzzer's coverage instrumentation.
set(_fz ${CMAKE_SOURCE_DIR}/tests/fuzz)

# Every build: the seeds and regression inputs through the Lua drivers
# (no libFuzzer needed), so a fixed finding stays fixed in the normal and
# ASan builds too.
foreach(target pki_csr pki_config inventory env_dump kubeconfig state_json cmdline)
  add_test(NAME fuzz_replay_${target} COMMAND ${KCMRUN} ${_fz}/replay.lua)
  set_tests_properties(fuzz_replay_${target} PROPERTIES LABELS "unit"
                       ENVIRONMENT "FUZZ_TARGET=${target}" TIMEOUT 120)
endforeach()
file(GLOB _kh_seeds ${_fz}/seeds/known_hosts/*)
add_executable(fuzz_replay_known_hosts ${_fz}/fuzz_known_hosts.c)
target_compile_definitions(fuzz_replay_known_hosts PRIVATE KCM_FUZZ_STANDALONE)
target_link_libraries(fuzz_replay_known_hosts PRIVATE kcmcore)
add_test(NAME fuzz_replay_known_hosts COMMAND fuzz_replay_known_hosts ${_kh_seeds})
set_tests_properties(fuzz_replay_known_hosts PROPERTIES LABELS "unit" TIMEOUT 120)
# issue 25: ssh_config parsing and redaction (with its linear-time check)
foreach(target ssh_config redact)
  file(GLOB _seeds ${_fz}/seeds/${target}/*)
  add_executable(fuzz_replay_${target} ${_fz}/fuzz_${target}.c)
  target_compile_definitions(fuzz_replay_${target} PRIVATE KCM_FUZZ_STANDALONE)
  target_link_libraries(fuzz_replay_${target} PRIVATE kcmcore)
  add_test(NAME fuzz_replay_${target} COMMAND fuzz_replay_${target} ${_seeds})
  set_tests_properties(fuzz_replay_${target} PROPERTIES LABELS "unit" TIMEOUT 120)
endforeach()

if(KCM_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  set(_fz_flags -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                -fno-omit-frame-pointer -g -O1)
  # The same sources, include folders and libraries as kcmcore (read from it,
  # so the two cannot drift: libcurl is dlopened, never linked).
  get_target_property(_core_srcs kcmcore SOURCES)
  get_target_property(_core_incs kcmcore INCLUDE_DIRECTORIES)
  get_target_property(_core_libs kcmcore LINK_LIBRARIES)
  add_library(kcmcore_fuzz STATIC ${_core_srcs})
  target_include_directories(kcmcore_fuzz PUBLIC ${_core_incs})
  target_compile_options(kcmcore_fuzz PRIVATE ${_fz_flags})
  target_link_libraries(kcmcore_fuzz PUBLIC ${_core_libs})

  # target;source;extra seed folders
  set(_fz_targets
      "pki_csr|fuzz_lua.c|${CMAKE_SOURCE_DIR}/tests/pki/fixtures"
      "pki_config|fuzz_lua.c|${CMAKE_SOURCE_DIR}/tests/pki/fixtures"
      "inventory|fuzz_lua.c|${CMAKE_SOURCE_DIR}/tests/unit/fixtures"
      "env_dump|fuzz_lua.c|"
      "kubeconfig|fuzz_lua.c|${CMAKE_SOURCE_DIR}/tests/template/fuzz/yaml"
      "known_hosts|fuzz_known_hosts.c|"
      "ssh_config|fuzz_ssh_config.c|"
      "redact|fuzz_redact.c|"
      "state_json|fuzz_lua.c|"
      "cmdline|fuzz_lua.c|")
  foreach(spec ${_fz_targets})
    string(REPLACE "|" ";" spec "${spec}")
    list(GET spec 0 target)
    list(GET spec 1 src)
    list(GET spec 2 extra)
    add_executable(fuzz_${target} ${_fz}/${src})
    target_compile_options(fuzz_${target} PRIVATE ${_fz_flags})
    target_compile_definitions(fuzz_${target} PRIVATE KCM_FUZZ_DRIVER="${_fz}/${target}.lua")
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(fuzz_${target} PRIVATE kcmcore_fuzz)
    set(_corpus ${CMAKE_BINARY_DIR}/fuzz/${target}-corpus)
    set(_dict "")
    if(EXISTS ${_fz}/dict/${target}.dict)
      set(_dict "-dict=${_fz}/dict/${target}.dict")
    endif()
    add_test(NAME fuzz_${target}
             COMMAND sh -c "mkdir -p '${_corpus}' && exec \"$0\" -max_total_time=60 -timeout=10 -rss_limit_mb=2048 ${_dict} -artifact_prefix='${CMAKE_BINARY_DIR}/fuzz/${target}-' '${_corpus}' '${_fz}/seeds/${target}' ${extra}"
                     $<TARGET_FILE:fuzz_${target}>)
    set_tests_properties(fuzz_${target} PROPERTIES LABELS "fuzz" TIMEOUT 240)
  endforeach()
endif()
