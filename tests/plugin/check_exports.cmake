# Fails unless the shared object LIB exports exactly pgbv_abi_version and pgbv_plugin_init.
# Usage: cmake -DLIB=libpgbv.so -DNM=nm -P check_exports.cmake
if(NOT NM)
  set(NM nm)
endif()
execute_process(COMMAND ${NM} -D --defined-only ${LIB}
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} -D ${LIB} failed")
endif()
string(REGEX MATCHALL "[^\n]+" lines "${out}")
set(names "")
foreach(line IN LISTS lines)
  string(REGEX REPLACE "^[0-9a-fA-F]* *[A-Za-z] " "" name "${line}")
  list(APPEND names "${name}")
endforeach()
list(SORT names)
if(NOT names STREQUAL "pgbv_abi_version;pgbv_plugin_init")
  message(FATAL_ERROR "${LIB} exports [${names}], expected exactly pgbv_abi_version and "
                      "pgbv_plugin_init (check -fvisibility=hidden and plugin/exports.map)")
endif()
message(STATUS "${LIB} exports only ${names}")
