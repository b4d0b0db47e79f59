/* -*- c++ -*- ----------------------------------------------------------
   mlff-distiller LAMMPS plugin: pair style mliap/aoti

   Runs the whole force step of a student model compiled ahead of time with
   AOTInductor (`mlff-distiller export MODEL -o FILE.mliap --format aoti`
   writes FILE.pt2) through libtorch, from C++: no Python on the step path.
   Positions go to the model's device each step, the neighbour pairs when they
   change; pair vectors, the cutoff, forces, energies and the virial are
   computed there, and forces (energies, virial when asked) come back.

   One MPI rank (ghost atoms are then periodic images of local atoms, gathered
   on the device); several ranks run the same model through `mliap/halo`.

   Syntax:   pair_style mliap/aoti FILE.pt2
             pair_coeff * * El1 El2 ... (NULL allowed)
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_MLIAP_AOTI_H
#define LMP_PAIR_MLIAP_AOTI_H

#include "pair.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairMLIAPAoti : public Pair {
 public:
  PairMLIAPAoti(class LAMMPS *);
  ~PairMLIAPAoti() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  double memory_usage() override;

  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;

 protected:
  struct Package;                      // the loaded package and its device tensors (libtorch)
  std::unique_ptr<Package> package;    // kept out of this header: LAMMPS sources need no torch
  std::string package_file;
  std::vector<std::string> elements;    // the package's elements
  double cutoff;
  int *map;    // atom type -> element index, -1 for NULL

  // host copies of what the package gets, rebuilt when LAMMPS reneighbours (pairs: see compute)
  std::vector<int64_t> species, ghosts, owners, pair_i, pair_j;
  std::vector<double> owner_index;    // forward-communicated to find each ghost's local owner

  void allocate();
  void read_package_metadata();
  void load_package();
  void collect_neighbours();
  void collect_pairs(bool within_cutoff);
  void add_outputs();
};

}    // namespace LAMMPS_NS

#endif
