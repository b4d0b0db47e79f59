/* -*- c++ -*- ----------------------------------------------------------
   mlff-distiller LAMMPS plugin: pair style mliap/halo

   Runs an ML-IAP unified Python model (the same object and file as
   `pair_style mliap unified FILE`) with message passing through halo exchange:
   the model gets neighbour pairs of the local atoms only, and moves per-atom
   feature rows between owners and their ghost copies (other MPI ranks and
   periodic images alike) through LAMMPS's own forward and reverse
   communication, once per layer. Memory is linear in the number of pairs and
   no deep ghost shell is recomputed.

   Syntax:   pair_style mliap/halo FILE
             pair_coeff * * El1 El2 ... (NULL allowed)
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_MLIAP_HALO_H
#define LMP_PAIR_MLIAP_HALO_H

#include "student_pair.h"

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairMLIAPHalo : public StudentPair {
 public:
  PairMLIAPHalo(class LAMMPS *);
  ~PairMLIAPHalo() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void init_style() override;
  double memory_usage() override;

 protected:
  void *py_model;    // PyObject *: the ML-IAP unified object
  void *py_data;     // PyObject *: the HaloData handed to compute_forces

  // linear-memory per-step arrays, shared with Python as numpy views
  std::vector<int> pair_i, pair_j, elems;
  // on one rank: the local owner of every atom (itself for local atoms), so that Python can
  // exchange on the device; rebuilt with the ghosts, at each reneighbouring
  std::vector<int> owner;
  std::vector<double> rij, fij, eatoms;

  int gil_state;    // PyGILState_STATE of the current PyGILState_Ensure

  const int *owners_on_this_rank();
  void release_python();
  [[noreturn]] void python_failure(const std::string &what, bool all_ranks);
  void stop_if_any_rank_failed(bool failed, const std::string &what);
};

}    // namespace LAMMPS_NS

#endif
