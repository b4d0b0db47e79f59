/* -*- c++ -*- ----------------------------------------------------------
   mlff-distiller LAMMPS plugin: the per-layer halo exchange that both pair
   styles of the plugin use (mliap/halo from Python through ctypes, mliap/aoti
   from its compiled package through the operator mlff_plugin::halo_exchange)

   exchange() moves rows of a C-contiguous [nlocal + nghost, width] array of
   doubles or floats between atoms and their ghost copies through LAMMPS's own
   forward and reverse communication: other MPI ranks and periodic images
   alike, ghost-of-ghost chains included. Collective: every rank, ranks without
   atoms included, must make the same calls with the same width.
------------------------------------------------------------------------- */

#ifndef LMP_MLFF_HALO_EXCHANGE_PAIR_H
#define LMP_MLFF_HALO_EXCHANGE_PAIR_H

#include "pair.h"

#include <vector>

namespace LAMMPS_NS {

class HaloExchangePair : public Pair {
 public:
  HaloExchangePair(class LAMMPS *);

  // dst = src, then forward (reverse = 0): every ghost row becomes a copy of its owner's row;
  // reverse: every owner row gets the sum of its ghost rows, ghost rows become 0.
  // dtype and the returned status: halo_protocol.h
  int exchange(void *src, void *dst, long long nrows, int width, int dtype, int reverse);

  // on one rank, where every ghost is a periodic image of a local atom: the local atom that each
  // atom copies (itself for a local atom), by one forward exchange of the local indices
  std::vector<int> local_owners();

  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

 protected:
  // the slice of a feature array being exchanged
  void *xbuf;
  int xwidth, xoffset, xcount, xdouble;
};

}    // namespace LAMMPS_NS

#endif
