# petrel_layer(<folder> SOURCES <files> [DEPENDS <layers>] [LIBS <libraries>])
#
# One static library per folder of src/ (petrel_<folder>), depending only on
# the layers below it. The rule is enforced by the compiler, not by review:
# each layer gets an include root of its own in the build tree,
# <build>/layers/<folder>/, holding a single symlink <folder> -> src/<folder>,
# and only that root is put on the include path of the layer and of the
# layers that depend on it. An `#include "net/..."` in src/store/ therefore
# fails with "No such file or directory", because the store layer's include
# path has no net/ in it. (tests/layering checks that it does.)
function(petrel_layer folder)
  cmake_parse_arguments(PARSE_ARGV 1 L "" "" "SOURCES;DEPENDS;LIBS")
  set(root "${PROJECT_BINARY_DIR}/layers/${folder}")
  file(MAKE_DIRECTORY "${root}")
  if(NOT EXISTS "${root}/${folder}")
    file(CREATE_LINK "${CMAKE_CURRENT_SOURCE_DIR}" "${root}/${folder}" SYMBOLIC)
  endif()
  add_library(petrel_${folder} STATIC ${L_SOURCES})
  target_include_directories(petrel_${folder} PUBLIC "${root}")
  list(TRANSFORM L_DEPENDS PREPEND petrel_)
  target_link_libraries(petrel_${folder} PUBLIC ${L_DEPENDS} ${L_LIBS})
  target_compile_options(petrel_${folder} PRIVATE ${PETREL_WARNINGS})
endfunction()
