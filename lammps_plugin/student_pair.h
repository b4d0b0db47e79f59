/* -*- c++ -*- ----------------------------------------------------------
   mlff-distiller LAMMPS plugin: what both pair styles of the plugin share,
   mliap/halo and mliap/aoti: the model's elements and cutoff, pair_coeff's
   mapping of atom types to elements, and the per-layer halo exchange
   (mliap/halo calls it from Python through ctypes, mliap/aoti from its
   compiled package through the operator mlff_plugin::halo_exchange).

   exchange() moves rows of a C-contiguous [nlocal + nghost, width] array of
   doubles or floats between atoms and their ghost copies through LAMMPS's own
   forward and reverse communication: other MPI ranks and periodic images
   alike, ghost-of-ghost chains included. Collective: every rank, ranks without
   atoms included, must make the same calls with the same width.
------------------------------------------------------------------------- */

#ifndef LMP_MLFF_STUDENT_PAIR_H
#define LMP_MLFF_STUDENT_PAIR_H

#include "pair.h"

#include <string>
#include <vector>

namespace LAMMPS_NS {

class StudentPair : public Pair {
 public:
  StudentPair(class LAMMPS *, const char *style);
  ~StudentPair() override;

  // pair_coeff * * El1 El2 ...: the model's element of each atom type, NULL for types it leaves out
  void coeff(int, char **) override;
  double init_one(int, int) override;

  // dst = src, then forward (reverse = 0): every ghost row becomes a copy of its owner's row;
  // reverse: every owner row gets the sum of its ghost rows, ghost rows become 0.
  // dtype and the returned status: halo_protocol.h
  int exchange(void *src, void *dst, long long nrows, int width, int dtype, int reverse);

  // the rows LAMMPS's forward communication sends (local atoms, and ghosts where it relays them),
  // sorted, recorded by one forward communication that moves no data: with the ghost rows, all
  // that an exchange reads or writes. Valid until LAMMPS reneighbours. Collective.
  std::vector<int> sent_rows();

  // on one rank, where every ghost is a periodic image of a local atom: the local atom that each
  // atom copies (itself for a local atom), by one forward exchange of the local indices
  std::vector<int> local_owners();

  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

 protected:
  const char *style;                    // the pair style's name, for messages
  std::string model_file;               // the file of pair_style
  std::vector<std::string> elements;    // the model's elements
  double cutoff;                        // the model's cutoff
  int *map;                             // atom type -> element index, -1 for NULL

  void allocate();

  // Set-up problems that may hit some ranks only (a file system, a GPU), handled collectively so
  // that no rank goes on to wait for one that stopped: ranks_with_problem(here) counts the ranks
  // that have one; stop_on_problems then stops LAMMPS where any has (problem: this rank's, empty
  // where none) with error->all where every rank has it (rank 0 prints it, every rank exits: an
  // MPI abort can lose the message to mpirun), else error->one on the ranks that have it and
  // error->all, pointing to their message, on the others. Both collective.
  int ranks_with_problem(bool here);
  void stop_on_problems(const std::string &problem, int ranks);

  // the slice of a feature array being exchanged, and where LAMMPS's rows are in it (nullptr: at
  // their own index)
  void *xbuf;
  int xwidth, xoffset, xcount, xdouble;
  const int *xrow = nullptr;
  std::vector<int> *recording = nullptr;    // sent_rows(): the forward lists go here

  // the communication behind exchange(), with no copy first and no ghost rows zeroed after: on
  // an array of all rows (stage_row nullptr) or a stage of some (see student_pair.cpp)
  void communicate(void *array, const int *stage_row, int width, int dtype, int reverse);
};

}    // namespace LAMMPS_NS

#endif
