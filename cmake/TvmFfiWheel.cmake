# TvmFfiWheel.cmake: configure a tvm-ffi kernel library target for a wheel.
#
# The tvmffi-wheel backend puts this folder on CMAKE_MODULE_PATH, so a project writes
#
#   find_package(tvm_ffi CONFIG REQUIRED)
#   add_library(my_kernels SHARED src/kernels.cc)
#   tvm_ffi_configure_target(my_kernels)
#   tvmffi_wheel_configure_target(my_kernels DESTINATION my_pkg/lib)
#   install(TARGETS my_kernels LIBRARY DESTINATION my_pkg/lib RUNTIME DESTINATION my_pkg/lib)
#
# (RUNTIME: a Windows DLL is a runtime artifact, which LIBRARY DESTINATION does not place.)
#
# tvmffi_wheel_configure_target(<target> [DESTINATION <dir>])
#   DESTINATION: the install destination used for <target>, relative to
#                CMAKE_INSTALL_PREFIX (default "."). It must match install(TARGETS).
#
# It does at link time what would otherwise be patched into the binary afterwards:
#   - hidden visibility for C, C++ and CUDA, so only the symbols tvm-ffi's export macros
#     mark (the __tvm_ffi_* entry points) leave the library;
#   - -Wl,--exclude-libs,ALL, so code linked in from static libraries (libstdc++ parts
#     in manylinux toolchains, for example) is not exported and cannot be bound by others
#     (where the linker has it: zig's does not, and the version script below covers it);
#   - a linker version script that exports the __tvm_ffi_* symbols and nothing else:
#     libstdc++ declares namespace std with default visibility, so template code such as
#     std::vector<long>::_M_realloc_insert would otherwise still be exported as a weak
#     symbol that other libraries in the process can bind to (so this function is for
#     tvm-ffi kernel libraries, not for CPython extension modules, which export PyInit_*);
#   - an install run path from DESTINATION to the installed apache-tvm-ffi wheel's
#     tvm_ffi/lib, relative to $ORIGIN (@loader_path on macOS, linked in: no
#     install_name_tool at install), so the library loads with ctypes, from C++, or
#     before `import tvm_ffi`; Windows has no run path (the repair's __init__.py block
#     and `import tvm_ffi` find tvm_ffi.dll);
#   - on macOS an exported symbols list instead of the version script (ld64 has none;
#     zig's Mach-O linker ignores the list); on Windows only what TVM_FFI_DLL_EXPORT marks
#     with __declspec(dllexport) is exported, so neither is needed;
#   - in a source folder whose path has a space or a quote: tvm_ffi_configure_target's
#     -ffile-prefix-map (call it first) for C and C++ only. nvcc hands options it does not
#     know to the host compiler through a shell, unquoted, which splits such a path; the
#     backend's own, quoted mapping of the project folder covers CUDA compiles.

include(CheckLinkerFlag)

# ELF: a version script that exports __tvm_ffi_* alone, and --exclude-libs where the linker has it.
function(_tvmffi_wheel_elf_exports target)
  set(_tvmffi_wheel_exports "${CMAKE_CURRENT_BINARY_DIR}/tvmffi_wheel_exports.map")
  file(WRITE "${_tvmffi_wheel_exports}" "{\n  global: __tvm_ffi_*;\n  local: *;\n};\n")
  target_link_options("${target}" PRIVATE "LINKER:--version-script=${_tvmffi_wheel_exports}")
  if(NOT DEFINED TVMFFI_WHEEL_LINKER_EXCLUDE_LIBS)
    get_property(_tvmffi_wheel_languages GLOBAL PROPERTY ENABLED_LANGUAGES)
    if("CXX" IN_LIST _tvmffi_wheel_languages)
      set(_tvmffi_wheel_language CXX)
    else()
      set(_tvmffi_wheel_language C)
    endif()
    check_linker_flag(${_tvmffi_wheel_language} "LINKER:--exclude-libs,ALL" TVMFFI_WHEEL_LINKER_EXCLUDE_LIBS)
  endif()
  if(TVMFFI_WHEEL_LINKER_EXCLUDE_LIBS)
    target_link_options("${target}" PRIVATE "LINKER:--exclude-libs,ALL")
  endif()
  set_property(TARGET "${target}" APPEND PROPERTY LINK_DEPENDS "${_tvmffi_wheel_exports}")
endfunction()

function(tvmffi_wheel_configure_target target)
  cmake_parse_arguments(PARSE_ARGV 1 _tvmffi_wheel "" "DESTINATION" "")
  if(_tvmffi_wheel_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR
      "tvmffi_wheel_configure_target(${target}): unknown arguments "
      "'${_tvmffi_wheel_UNPARSED_ARGUMENTS}'. Usage: "
      "tvmffi_wheel_configure_target(<target> [DESTINATION <dir>])")
  endif()
  if(NOT TARGET "${target}")
    message(FATAL_ERROR "tvmffi_wheel_configure_target: '${target}' is not a target")
  endif()
  if(NOT DEFINED _tvmffi_wheel_DESTINATION)
    set(_tvmffi_wheel_DESTINATION ".")
  endif()

  set_target_properties("${target}" PROPERTIES
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    CUDA_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(APPLE)
    set(_tvmffi_wheel_exports "${CMAKE_CURRENT_BINARY_DIR}/tvmffi_wheel_exports.txt")
    file(WRITE "${_tvmffi_wheel_exports}" "___tvm_ffi_*\n")
    target_link_options("${target}" PRIVATE "LINKER:-exported_symbols_list,${_tvmffi_wheel_exports}")
    set_property(TARGET "${target}" APPEND PROPERTY LINK_DEPENDS "${_tvmffi_wheel_exports}")
  elseif(NOT WIN32)
    _tvmffi_wheel_elf_exports("${target}")
  endif()

  get_target_property(_tvmffi_wheel_options "${target}" COMPILE_OPTIONS)
  if(_tvmffi_wheel_options)
    set(_tvmffi_wheel_kept "")
    foreach(_tvmffi_wheel_option IN LISTS _tvmffi_wheel_options)
      if(_tvmffi_wheel_option MATCHES "^-ffile-prefix-map=.*[ \t'\"]")
        set(_tvmffi_wheel_option "$<$<NOT:$<COMPILE_LANGUAGE:CUDA>>:${_tvmffi_wheel_option}>")
      endif()
      list(APPEND _tvmffi_wheel_kept "${_tvmffi_wheel_option}")
    endforeach()
    set_property(TARGET "${target}" PROPERTY COMPILE_OPTIONS "${_tvmffi_wheel_kept}")
  endif()

  # The wheel's root is site-packages: scikit-build-core's platlib folder when it
  # drives the build, the install prefix otherwise.
  if(DEFINED SKBUILD_PLATLIB_DIR)
    set(_tvmffi_wheel_root "${SKBUILD_PLATLIB_DIR}")
  else()
    set(_tvmffi_wheel_root "${CMAKE_INSTALL_PREFIX}")
  endif()
  get_filename_component(_tvmffi_wheel_from
    "${_tvmffi_wheel_DESTINATION}" ABSOLUTE BASE_DIR "${CMAKE_INSTALL_PREFIX}")
  file(RELATIVE_PATH _tvmffi_wheel_relative
    "${_tvmffi_wheel_from}" "${_tvmffi_wheel_root}/tvm_ffi/lib")
  if(APPLE)
    set_target_properties("${target}" PROPERTIES BUILD_WITH_INSTALL_RPATH ON)
    set_property(TARGET "${target}" APPEND PROPERTY INSTALL_RPATH "@loader_path/${_tvmffi_wheel_relative}")
  elseif(NOT WIN32)
    set_property(TARGET "${target}" APPEND PROPERTY INSTALL_RPATH "\$ORIGIN/${_tvmffi_wheel_relative}")
  endif()
endfunction()
