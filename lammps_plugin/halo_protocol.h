/* -*- c++ -*- ----------------------------------------------------------
   mlff-distiller LAMMPS plugin: the contract between pair style mliap/halo
   and its Python side, python/mlff_distiller/lammps/halo_data.py.

   Python defines the same contract (PROTOCOL_VERSION, BIND_FORMAT, DTYPE_CODES,
   EXCHANGE_ERRORS there). At `pair_style` time the plugin passes
   halo_protocol_signature() to halo_data.connect(), which refuses a plugin
   whose signature differs from its own: a change on one side alone stops the
   run with a message instead of misreading buffers.
------------------------------------------------------------------------- */

#ifndef LMP_MLFF_HALO_PROTOCOL_H
#define LMP_MLFF_HALO_PROTOCOL_H

#include <string>

namespace LAMMPS_NS {
namespace MLFFHalo {

  constexpr int PROTOCOL_VERSION = 2;

  // HaloData._bind(nlocal, ntotal, npairs, elems, pair_i, pair_j, tag, owner, rij, eatoms, fij, eflag, vflag)
  // in Python's C-API format: i = int, K = buffer address (unsigned long long); owner is 0 (null)
  // on several ranks, where ghosts may belong to other ranks
  constexpr const char *BIND_FORMAT = "iiiKKKKKKKKii";
  constexpr const char *BIND_NAMES =
      "nlocal,ntotal,npairs,elems,pair_i,pair_j,tag,owner,rij,eatoms,fij,eflag,vflag";

  // element type of the arrays handed to mlff_halo_exchange()
  enum Dtype { FLOAT64 = 0, FLOAT32 = 1 };

  // return codes of mlff_halo_exchange()
  enum Status { OK = 0, BAD_ROWS = 1, BAD_WIDTH = 2, BAD_DTYPE = 3, NULL_DATA = 4 };

  inline std::string halo_protocol_signature()
  {
    return "mlff-halo/" + std::to_string(PROTOCOL_VERSION) + " bind(" + BIND_FORMAT + ":" +
        BIND_NAMES + ") dtype(float64=" + std::to_string(FLOAT64) +
        ",float32=" + std::to_string(FLOAT32) + ") status(" + std::to_string(BAD_ROWS) + "," +
        std::to_string(BAD_WIDTH) + "," + std::to_string(BAD_DTYPE) + "," +
        std::to_string(NULL_DATA) + ")";
  }

}    // namespace MLFFHalo
}    // namespace LAMMPS_NS

#endif
