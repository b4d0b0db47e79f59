# libtorch of the Python that runs mlff-distiller (Python_EXECUTABLE): its wheel ships headers and
# CMake files, so what links here (the plugin, the fused kernels) and the torch that compiles and
# loads packages are one version. Sets MLFF_TORCH_VERSION (e.g. 2.11.0), TORCH_LIBRARIES and
# MLFF_TORCH_CUDA (torch built with CUDA: its CUDA headers and libraries are there to use).
if(NOT Python_EXECUTABLE)
  find_package(Python REQUIRED COMPONENTS Interpreter)
endif()
execute_process(
  COMMAND ${Python_EXECUTABLE} -c "import torch; print(torch.utils.cmake_prefix_path); print(torch.__version__.split('+')[0])"
  OUTPUT_VARIABLE _torch_info OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _torch_found)
if(NOT _torch_found EQUAL 0)
  message(FATAL_ERROR "${Python_EXECUTABLE} cannot import torch, whose libtorch mlff-distiller's C++ code links: "
    "install torch into that Python (scripts/setup.sh does) or set Python_EXECUTABLE to one that has it")
endif()
string(REPLACE "\n" ";" _torch_info "${_torch_info}")
list(GET _torch_info 0 _torch_prefix)
list(GET _torch_info 1 MLFF_TORCH_VERSION)
list(APPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
find_package(Torch REQUIRED CONFIG)
message(STATUS "mlff-distiller: libtorch ${MLFF_TORCH_VERSION} from ${_torch_prefix}")
if(TORCH_CUDA_LIBRARIES)
  set(MLFF_TORCH_CUDA TRUE)
else()
  set(MLFF_TORCH_CUDA FALSE)
endif()
