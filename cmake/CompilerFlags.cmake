# Warnings are errors everywhere; sanitizers on request.
add_library(pgbv_flags INTERFACE)
target_compile_options(pgbv_flags INTERFACE -Wall -Wextra -Werror)
target_include_directories(pgbv_flags INTERFACE ${PROJECT_SOURCE_DIR}/include)

set(PGBV_SANITIZER_FLAGS "")
if(PGBV_SANITIZE)
  set(PGBV_SANITIZER_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer
                           -fno-sanitize-recover=undefined)
  add_compile_options(${PGBV_SANITIZER_FLAGS})
  add_link_options(-fsanitize=address,undefined)
endif()
