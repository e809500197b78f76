# One static library per folder of src/, linked only to the layers below it.
#
#   tcpshift_layer(NAME [LAYERS lower ...] [LIBS external ...] [PRIVATE_LIBS external ...])
#
# builds src/NAME/**.cpp into tcpshift_NAME. A layer's headers are reachable only through its
# target: each layer exposes an include root of its own (build/layers/NAME, holding a link
# NAME -> src/NAME), so `#include "NAME/x.h"` resolves only in code that links tcpshift_NAME,
# directly or through a layer above it. An include of a higher layer, a back-edge, therefore
# fails to compile, and a call into one fails to link.
set(TCPSHIFT_LAYER_ROOT ${CMAKE_BINARY_DIR}/layers)

# The include root that makes `#include "NAME/..."` find DIR, and nothing else.
function(tcpshift_include_root name dir)
  file(MAKE_DIRECTORY ${TCPSHIFT_LAYER_ROOT}/${name})
  file(CREATE_LINK ${dir} ${TCPSHIFT_LAYER_ROOT}/${name}/${name} SYMBOLIC)
endfunction()

# bpf/: the map layout and the flow hash, shared by the BPF program and userspace.
function(tcpshift_bpf_abi)
  tcpshift_include_root(bpf ${CMAKE_SOURCE_DIR}/bpf)
  add_library(tcpshift_bpf_abi INTERFACE)
  target_include_directories(tcpshift_bpf_abi INTERFACE ${TCPSHIFT_LAYER_ROOT}/bpf)
endfunction()

function(tcpshift_layer name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "LAYERS;LIBS;PRIVATE_LIBS;EXCLUDE")
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/${name}/*.cpp)
  foreach(excluded IN LISTS arg_EXCLUDE)
    list(REMOVE_ITEM sources ${CMAKE_SOURCE_DIR}/src/${name}/${excluded})
  endforeach()
  tcpshift_include_root(${name} ${CMAKE_SOURCE_DIR}/src/${name})
  add_library(tcpshift_${name} STATIC ${sources})
  target_include_directories(tcpshift_${name} PUBLIC ${TCPSHIFT_LAYER_ROOT}/${name})
  list(TRANSFORM arg_LAYERS PREPEND tcpshift_)
  target_link_libraries(tcpshift_${name} PUBLIC ${arg_LAYERS} ${arg_LIBS} PRIVATE ${arg_PRIVATE_LIBS})
endfunction()
