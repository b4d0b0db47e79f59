# A `lammps` interface target for building the plugin outside a LAMMPS build: LAMMPS's headers,
# its integer-size define and MPI (or LAMMPS's MPI stubs), as LAMMPS's examples/plugins do.
add_library(lammps INTERFACE)
target_include_directories(lammps INTERFACE ${LAMMPS_HEADER_DIR})

set(LAMMPS_SIZES "smallbig" CACHE STRING "integer sizes of the LAMMPS that loads the plugin: smallbig, bigbig or smallsmall")
string(TOUPPER ${LAMMPS_SIZES} _lammps_sizes)
if(NOT _lammps_sizes MATCHES "^(SMALLBIG|BIGBIG|SMALLSMALL)$")
  message(FATAL_ERROR "LAMMPS_SIZES='${LAMMPS_SIZES}': use smallbig, bigbig or smallsmall")
endif()
target_compile_definitions(lammps INTERFACE -DLAMMPS_${_lammps_sizes})

set(MPI_CXX_SKIP_MPICXX TRUE)
find_package(MPI QUIET)
option(BUILD_MPI "the LAMMPS that loads the plugin uses MPI" ${MPI_FOUND})
if(BUILD_MPI)
  find_package(MPI REQUIRED)
  target_link_libraries(lammps INTERFACE MPI::MPI_CXX)
elseif(EXISTS "${LAMMPS_HEADER_DIR}/STUBS/mpi.h")
  target_include_directories(lammps INTERFACE "${LAMMPS_HEADER_DIR}/STUBS")
else()
  message(FATAL_ERROR "no MPI found and no ${LAMMPS_HEADER_DIR}/STUBS/mpi.h: set MPI_CXX_COMPILER or BUILD_MPI")
endif()
