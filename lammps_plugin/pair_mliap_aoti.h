/* -*- c++ -*- ----------------------------------------------------------
   mlff-distiller LAMMPS plugin: pair style mliap/aoti

   Runs the whole force step of a student model compiled ahead of time with
   AOTInductor (`mlff-distiller export MODEL -o FILE.mliap --format aoti`
   writes FILE.pt2) through libtorch, from C++: no Python on the step path.
   Positions go to the model's device each step, the listed neighbour pairs
   when they change; the pairs within the cutoff, pair vectors, forces,
   energies and the virial are computed there, and forces (energies, virial when asked) come back.

   Ghost features after each layer: the package calls the operator
   mlff_plugin::halo_exchange, implemented here. On one MPI rank every ghost
   is a periodic image of a local atom and the exchange is a gather on the
   device; on several ranks it goes through LAMMPS's communication
   (StudentPair, as mliap/halo), from a host copy of the rows.

   Syntax:   pair_style mliap/aoti FILE.pt2
             pair_coeff * * El1 El2 ... (NULL allowed)
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_MLIAP_AOTI_H
#define LMP_PAIR_MLIAP_AOTI_H

#include "student_pair.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace at {
class Tensor;    // libtorch's, declared only: LAMMPS sources including this need no torch
}

namespace LAMMPS_NS {

class PairMLIAPAoti : public StudentPair {
 public:
  PairMLIAPAoti(class LAMMPS *);

  void compute(int, int) override;
  void settings(int, char **) override;
  void init_style() override;
  double memory_usage() override;

  // the operator mlff_plugin::halo_exchange on rows [nlocal + nghost + 1 padding, width]: the
  // ghost rows from their owners (reverse: owners += ghost rows, ghost rows 0)
  at::Tensor exchange_rows(const at::Tensor &rows, const at::Tensor &ghosts,
                           const at::Tensor &owners, bool reverse);

 protected:
  struct Package;                      // the loaded package and its device tensors (libtorch)
  std::unique_ptr<Package> package;    // kept out of this header: LAMMPS sources need no torch

  // host copies of what the package gets, rebuilt when LAMMPS reneighbours (pairs: all listed)
  std::vector<int64_t> species, ghosts, owners, pair_i, pair_j;

  void read_package_metadata();
  void load_package();
  void collect_neighbours();
  void collect_pairs();
  void add_outputs();
  void stage_rows();
};

}    // namespace LAMMPS_NS

#endif
