# bpf_skeleton(NAME SOURCE) compiles SOURCE with clang -target bpf and generates
# ${CMAKE_CURRENT_BINARY_DIR}/bpf/NAME.skel.h with `bpftool gen skeleton`. The object is
# embedded in the skeleton header, so nothing is loaded from a path at run time.
# -mcpu=v3 (kernel 5.1+ for its jumps, 5.12+ for atomics that return the old value): a
# round-robin turn is taken with one atomic fetch-and-add.
# It defines an INTERFACE target NAME_skel whose include path exposes the header. clang writes
# the headers SOURCE includes to a depfile, so a change to any of them rebuilds the object.
function(bpf_skeleton name source)
  find_program(BPF_CLANG clang REQUIRED)
  find_program(BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  set(object ${out_dir}/${name}.bpf.o)
  set(skeleton ${out_dir}/${name}.skel.h)
  file(MAKE_DIRECTORY ${out_dir})
  add_custom_command(
    OUTPUT ${object}
    COMMAND ${BPF_CLANG} -g -O2 -Wall -Werror -target bpf -mcpu=v3
            -I${CMAKE_SOURCE_DIR}
            -I/usr/include/${CMAKE_LIBRARY_ARCHITECTURE}
            -MD -MF ${object}.d
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${source} -o ${object}
    DEPENDS ${source}
    DEPFILE ${object}.d
    COMMENT "BPF ${source}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skeleton}
    COMMAND ${BPFTOOL} gen skeleton ${object} name ${name} > ${skeleton}
    DEPENDS ${object}
    COMMENT "skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skeleton})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${out_dir})
endfunction()
