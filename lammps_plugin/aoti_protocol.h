/* -*- c++ -*- ----------------------------------------------------------
   mlff-distiller LAMMPS plugin: the contract between pair style mliap/aoti
   and the packages that python/mlff_distiller/lammps/aoti.py compiles.

   Python defines the same contract (AOTI_FORMAT, AOTI_VERSION,
   PACKAGE_INPUTS, PACKAGE_OUTPUTS there) and writes it into each package's
   metadata; the pair style compares that with the constants below and refuses
   a package that differs, naming the command that writes a matching one.
------------------------------------------------------------------------- */

#ifndef LMP_MLFF_AOTI_PROTOCOL_H
#define LMP_MLFF_AOTI_PROTOCOL_H

namespace LAMMPS_NS {
namespace MLFFAoti {

  constexpr const char *FORMAT = "mlff-distiller-aoti";
  constexpr const char *FORMAT_VERSION = "2";

  // the package's call: inputs and outputs in order (metadata keys "inputs", "outputs")
  constexpr const char *INPUTS = "x_local,x_ghost,species,pair_i,pair_j,ghosts,owners";
  constexpr const char *OUTPUTS = "forces,eatoms,energy,virial,vatom";
  enum Output { FORCES = 0, EATOMS = 1, ENERGY = 2, VIRIAL = 3, VATOM = 4, NOUTPUTS = 5 };

  // the two models of a package (Python: PACKAGE_MODELS): one MPI rank (ghost features gathered
  // inside the compiled code), several ranks (through the operator mlff_plugin::halo_exchange);
  // neither name begins with the other (torch 2.11's loader matches names as path prefixes)
  constexpr const char *ONE_RANK_MODEL = "one_rank";
  constexpr const char *RANKS_MODEL = "ranks";

  // metadata key (Python: FUSED_KERNELS_KEY) that is "1" when the package calls the operators
  // mlff_fused::*, and the library that registers them, relative to the plugin's folder (Python:
  // model/fused LIBRARY, relative to the environment's prefix; the plugin is in lib/lammps-plugins)
  constexpr const char *FUSED_KERNELS_KEY = "fused_kernels";
  constexpr const char *FUSED_LIBRARY = "../mlff-distiller/libmlff_fused.so";

  constexpr const char *EXPORT_COMMAND =
      "mlff-distiller export MODEL -o FILE.mliap --format aoti --device cpu|cuda";

}    // namespace MLFFAoti
}    // namespace LAMMPS_NS

#endif
