# Templates, YAML and kubeconfig (issue 4).
set(_tpl ${CMAKE_SOURCE_DIR}/tests/template)

add_test(NAME template_engine COMMAND ${KCMRUN} ${_tpl}/test_template.lua)
add_test(NAME template_yaml COMMAND ${KCMRUN} ${_tpl}/test_yaml.lua)
add_test(NAME template_yaml_pyyaml_oracle COMMAND bash ${_tpl}/test_yaml_oracle.sh)
add_test(NAME template_kubeconfig_kubectl_oracle COMMAND bash ${_tpl}/test_kubeconfig.sh)
add_test(NAME template_unit_vs_bash_heredoc COMMAND bash ${_tpl}/test_unit_render.sh)
set_tests_properties(template_engine template_yaml template_yaml_pyyaml_oracle
                     template_kubeconfig_kubectl_oracle template_unit_vs_bash_heredoc
                     PROPERTIES LABELS "unit" ENVIRONMENT "KCMRUN=${KCMRUN}" TIMEOUT 120)

# libFuzzer targets: -DKCM_FUZZ=ON -DCMAKE_C_COMPILER=clang(-14). Built straight
# from the module sources (not kcmcore) so the parsers carry the fuzzer's
# coverage instrumentation; each runs 60 s under ctest -L fuzz.
if(KCM_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(WARNING "KCM_FUZZ needs clang (CMAKE_C_COMPILER=clang-14); fuzz targets skipped")
  else()
    set(_fuzz_flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1)
    foreach(target template yaml)
      if(target STREQUAL "template")
        set(_srcs ${CMAKE_SOURCE_DIR}/engine/template.c ${CMAKE_SOURCE_DIR}/engine/template_parse.c)
      else()
        set(_srcs ${CMAKE_SOURCE_DIR}/engine/yaml.c)
      endif()
      list(APPEND _srcs ${CMAKE_SOURCE_DIR}/engine/util.c)   # kcm_key_less, kcm_buf
      add_executable(fuzz_${target} ${_tpl}/fuzz_${target}.c ${_srcs})
      target_include_directories(fuzz_${target} PRIVATE ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/engine)
      target_compile_options(fuzz_${target} PRIVATE ${_fuzz_flags})
      target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,address,undefined)
      target_link_libraries(fuzz_${target} PRIVATE PkgConfig::LUA PkgConfig::YAML PkgConfig::SSL m)
      set(_corpus ${CMAKE_BINARY_DIR}/fuzz/${target}-corpus)
      add_test(NAME fuzz_${target}
               COMMAND sh -c "mkdir -p '${_corpus}' && exec \"$0\" -max_total_time=60 -timeout=10 -rss_limit_mb=2048 -artifact_prefix='${CMAKE_BINARY_DIR}/fuzz/${target}-' '${_corpus}' '${_tpl}/fuzz/${target}'"
                       $<TARGET_FILE:fuzz_${target}>)
      set_tests_properties(fuzz_${target} PROPERTIES LABELS "fuzz" TIMEOUT 240)
    endforeach()
  endif()
endif()
