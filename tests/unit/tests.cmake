foreach(case forks serial isolation override check steps lock coroutine signal)
  add_test(NAME engine_${case} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/unit/test_engine.sh ${case})
  set_tests_properties(engine_${case} PROPERTIES LABELS "unit" ENVIRONMENT "KCMRUN=$<TARGET_FILE:kcmrun>" TIMEOUT 120)
endforeach()
