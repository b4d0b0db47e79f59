/* ----------------------------------------------------------------------
   mlff-distiller LAMMPS plugin: pair style mliap/halo (see pair_mliap_halo.h)

   Per step:
   1. the pairs of local atoms within the model cutoff go into flat arrays
      (pair_i, pair_j, rij: memory linear in the number of pairs);
   2. a Python HaloData object (mlff_distiller/lammps/halo_data.py) gets numpy
      views of them and is handed to model.compute_forces(data), as ML-IAP does;
      its forward_exchange/reverse_exchange call back into exchange()
      (student_pair.cpp),
      which moves rows of a [ntotal, width] array through comm->forward_comm /
      comm->reverse_comm of this pair style, in slices of comm_forward values;
   3. fij = dE/dr_ij comes back: f_i += fij, f_j -= fij, virial tallied per pair
      (global and per atom, as PairMLIAP::v_tally), energies added.
------------------------------------------------------------------------- */

#define PY_SSIZE_T_CLEAN
#include <Python.h>    // must come first

#include "halo_protocol.h"
#include "model_settings.h"
#include "pair_mliap_halo.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "lmppython.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

using namespace LAMMPS_NS;

/* ----------------------------------------------------------------------
   entry point for Python (ctypes): returns 0 on success
------------------------------------------------------------------------- */

extern "C" int mlff_halo_exchange(void *pair, void *src, void *dst, long long nrows, int width,
                                  int dtype, int reverse)
{
  if (!pair) return -1;
  return static_cast<PairMLIAPHalo *>(pair)->exchange(src, dst, nrows, width, dtype, reverse);
}

/* ---------------------------------------------------------------------- */

namespace {

// "ExceptionType: message" of the pending Python exception (cleared); the full
// traceback goes to stderr when asked for
std::string take_python_error(bool print_traceback)
{
  PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
  if (!type) return "unknown Python error";
  PyErr_NormalizeException(&type, &value, &traceback);
  if (traceback && value) PyException_SetTraceback(value, traceback);

  std::string text;
  PyObject *name = PyObject_GetAttrString(type, "__name__");
  if (name && PyUnicode_Check(name)) text = PyUnicode_AsUTF8(name);
  Py_XDECREF(name);
  if (value) {
    PyObject *str = PyObject_Str(value);
    if (str && PyUnicode_Check(str)) {
      const char *s = PyUnicode_AsUTF8(str);
      if (s && *s) text += std::string(": ") + s;
    }
    Py_XDECREF(str);
  }
  PyErr_Clear();

  PyObject *tbmod = print_traceback ? PyImport_ImportModule("traceback") : nullptr;
  if (tbmod) {
    PyObject *res = PyObject_CallMethod(tbmod, "print_exception", "OOO", type,
                                        value ? value : Py_None, traceback ? traceback : Py_None);
    Py_XDECREF(res);
    Py_DECREF(tbmod);
  }
  PyErr_Clear();
  fflush(stderr);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(traceback);
  return text;
}

}    // namespace

/* ---------------------------------------------------------------------- */

PairMLIAPHalo::PairMLIAPHalo(LAMMPS *lmp) :
    StudentPair(lmp, "mliap/halo"), py_model(nullptr), py_data(nullptr), gil_state(0)
{
}

/* ---------------------------------------------------------------------- */

PairMLIAPHalo::~PairMLIAPHalo()
{
  if (copymode) return;
  release_python();
}

/* ---------------------------------------------------------------------- */

void PairMLIAPHalo::release_python()
{
  if ((py_model || py_data) && Py_IsInitialized()) {
    PyGILState_STATE gstate = PyGILState_Ensure();
    Py_XDECREF((PyObject *) py_data);
    Py_XDECREF((PyObject *) py_model);
    PyGILState_Release(gstate);
  }
  py_model = py_data = nullptr;
}

/* ----------------------------------------------------------------------
   stop with the pending Python exception in the message; the caller holds the
   GIL through PyGILState_Ensure and gives up that hold here
------------------------------------------------------------------------- */

void PairMLIAPHalo::python_failure(const std::string &what, bool all_ranks)
{
  // errors every rank meets alike (loading the model): one traceback, from rank 0
  std::string message =
      "Pair style mliap/halo: " + what + ": " + take_python_error(!all_ranks || comm->me == 0);
  PyGILState_Release((PyGILState_STATE) gil_state);    // the caller's PyGILState_Ensure
  if (all_ranks) error->all(FLERR, message);
  error->one(FLERR, message);
}

/* ----------------------------------------------------------------------
   a set-up step that may fail on some ranks only (a GPU that one rank cannot
   use), its Python error as the problem of StudentPair::stop_on_problems
------------------------------------------------------------------------- */

void PairMLIAPHalo::stop_if_any_rank_failed(bool failed, const std::string &what)
{
  const int ranks = ranks_with_problem(failed);
  if (!ranks) return;
  std::string problem;
  if (failed)    // where every rank fails alike (loading the model): one traceback, rank 0's
    problem = "Pair style mliap/halo: " + what + ": " +
        take_python_error(ranks < comm->nprocs || comm->me == 0);
  PyGILState_Release((PyGILState_STATE) gil_state);    // the caller's PyGILState_Ensure
  stop_on_problems(problem, ranks);
}

/* ----------------------------------------------------------------------
   pair_style mliap/halo FILE: load the unified model object (every rank)
------------------------------------------------------------------------- */

void PairMLIAPHalo::settings(int narg, char **arg)
{
  if (narg != 1)
    error->all(FLERR, "Illegal pair_style mliap/halo command: expected pair_style mliap/halo FILE");

  release_python();
  model_file = arg[0];
  elements.clear();

  python->init();
  gil_state = (int) PyGILState_Ensure();

  PyObject *module = PyImport_ImportModule("mlff_distiller.lammps.halo_data");
  stop_if_any_rank_failed(
      !module,
      "cannot import mlff_distiller.lammps.halo_data (install mlff-distiller into the "
      "Python environment this LAMMPS embeds)");

  const std::string signature = MLFFHalo::halo_protocol_signature();
  PyObject *connected = PyObject_CallMethod(module, "connect", "sKKsi", model_file.c_str(),
                                            (unsigned long long) (uintptr_t) &mlff_halo_exchange,
                                            (unsigned long long) (uintptr_t) this,
                                            signature.c_str(), (int) sizeof(tagint));
  Py_DECREF(module);
  stop_if_any_rank_failed(!connected, "cannot load model file " + model_file);

  // connect() returns (model, data, element names, cutoff)
  PyObject *model = PyTuple_GetItem(connected, 0);
  PyObject *data = PyTuple_GetItem(connected, 1);
  PyObject *names = PyTuple_GetItem(connected, 2);
  PyObject *cut = PyTuple_GetItem(connected, 3);
  if (!model || !data || !names || !cut)
    python_failure("unexpected result of halo_data.connect()", true);
  for (Py_ssize_t k = 0; k < PyList_Size(names); k++) {
    const char *name = PyUnicode_AsUTF8(PyList_GetItem(names, k));
    if (!name) python_failure("bad element name in " + model_file, true);
    elements.emplace_back(name);
  }
  cutoff = PyFloat_AsDouble(cut);
  if (PyErr_Occurred()) python_failure("bad cutoff in " + model_file, true);
  Py_INCREF(model);
  Py_INCREF(data);
  py_model = model;
  py_data = data;
  Py_DECREF(connected);
  PyGILState_Release((PyGILState_STATE) gil_state);

  if (cutoff <= 0.0)
    error->all(FLERR, "Pair style mliap/halo: model {} has cutoff {}", model_file, cutoff);
}

/* ---------------------------------------------------------------------- */

void PairMLIAPHalo::init_style()
{
  if (!py_model) error->all(FLERR, "Pair style mliap/halo: no model loaded");
  MLFFSettings::check_model_settings(lmp, "mliap/halo");
  // a plain full list of the local atoms: no ghost neighbour lists, ghost features come by exchange
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

/* ---------------------------------------------------------------------- */

void PairMLIAPHalo::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);

  // LAMMPS keeps x and f contiguous: flat access skips a pointer load per neighbour
  const double *x = atom->x ? atom->x[0] : nullptr;
  double *f = atom->f ? atom->f[0] : nullptr;
  const int *type = atom->type;
  const int nlocal = atom->nlocal;
  const int ntotal = nlocal + atom->nghost;
  const double cutsq_model = cutoff * cutoff;

  // 1. flat pair arrays of the local atoms (i receives from j, rij = x_j - x_i)

  elems.resize(ntotal);
  for (int i = 0; i < ntotal; i++) elems[i] = map[type[i]];

  const int inum = list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  // every listed neighbour is written and kept or overwritten by the next one: the list holds
  // the skin too, so which pairs are inside the cutoff is unpredictable and a branch would stall
  size_t listed = 0;
  for (int ii = 0; ii < inum; ii++) listed += numneigh[ilist[ii]];
  if (pair_i.size() < listed + 1) {
    pair_i.resize(listed + 1);
    pair_j.resize(listed + 1);
    rij.resize(3 * (listed + 1));
  }
  int npairs = 0;
  for (int ii = 0; ii < inum; ii++) {
    const int i = ilist[ii];
    if (elems[i] < 0) continue;
    const double xi = x[3 * i], yi = x[3 * i + 1], zi = x[3 * i + 2];
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[3 * j] - xi, dy = x[3 * j + 1] - yi, dz = x[3 * j + 2] - zi;
      pair_i[npairs] = i;
      pair_j[npairs] = j;
      rij[3 * npairs] = dx;
      rij[3 * npairs + 1] = dy;
      rij[3 * npairs + 2] = dz;
      npairs += (dx * dx + dy * dy + dz * dz < cutsq_model) & (elems[j] >= 0);
    }
  }
  fij.assign(3 * (size_t) npairs, 0.0);
  eatoms.assign(nlocal, 0.0);

  // 2. the model, through the Python data object

  double energy = 0.0;
  {
    gil_state = (int) PyGILState_Ensure();
    auto *data = (PyObject *) py_data;
    auto addr = [](const void *p) {
      return (unsigned long long) (uintptr_t) p;
    };
    PyObject *res = PyObject_CallMethod(
        data, "_bind", MLFFHalo::BIND_FORMAT, nlocal, ntotal, npairs, addr(elems.data()),
        addr(pair_i.data()), addr(pair_j.data()), addr(atom->tag), addr(owners_on_this_rank()),
        addr(rij.data()), addr(eatoms.data()), addr(fij.data()), eflag, vflag);
    if (!res) python_failure("cannot pass the neighbour data to Python", false);
    Py_DECREF(res);

    res = PyObject_CallMethod((PyObject *) py_model, "compute_forces", "O", data);
    if (!res) python_failure("the model's compute_forces failed", false);
    Py_DECREF(res);

    PyObject *e = PyObject_GetAttrString(data, "energy");
    if (!e) python_failure("the model set no data.energy", false);
    energy = PyFloat_AsDouble(e);
    Py_DECREF(e);
    if (PyErr_Occurred()) python_failure("data.energy is not a number", false);
    PyGILState_Release((PyGILState_STATE) gil_state);
  }

  // 3. forces, virial, energies

  const double *fp = fij.data();
  const double *rp = rij.data();
  for (int p = 0; p < npairs; p++) {
    const int i = pair_i[p], j = pair_j[p];
    const double *g = fp + 3 * p;
    for (int k = 0; k < 3; k++) {
      f[3 * i + k] += g[k];
      f[3 * j + k] -= g[k];
    }

    if (vflag_either) {
      const double *r = rp + 3 * p;
      const double v[6] = {-r[0] * g[0], -r[1] * g[1], -r[2] * g[2],
                           -r[0] * g[1], -r[0] * g[2], -r[1] * g[2]};
      if (vflag_global)
        for (int k = 0; k < 6; k++) virial[k] += v[k];
      if (vflag_atom)
        for (int k = 0; k < 6; k++) {
          vatom[i][k] += 0.5 * v[k];
          vatom[j][k] += 0.5 * v[k];
        }
    }
  }

  if (eflag_global) eng_vdwl += energy;
  if (eflag_atom)
    for (int i = 0; i < nlocal; i++) eatom[i] += eatoms[i];
}

/* ----------------------------------------------------------------------
   on a single rank every ghost is a periodic image of a local atom: its owner's
   index comes from one forward exchange of the local indices, redone when the
   ghosts are rebuilt. On several ranks: null, the exchange stays collective.
------------------------------------------------------------------------- */

const int *PairMLIAPHalo::owners_on_this_rank()
{
  if (comm->nprocs > 1) return nullptr;
  const int ntotal = atom->nlocal + atom->nghost;
  if (neighbor->ago != 0 && (int) owner.size() == ntotal) return owner.data();
  owner = local_owners();
  return owner.data();
}

/* ---------------------------------------------------------------------- */

double PairMLIAPHalo::memory_usage()
{
  double bytes = Pair::memory_usage();
  const int n = atom->ntypes + 1;
  bytes += (double) n * n * (sizeof(int) + sizeof(double)) + (double) n * sizeof(int);
  bytes += (double) (pair_i.capacity() + pair_j.capacity() + elems.capacity() + owner.capacity()) *
      sizeof(int);
  bytes += (double) (rij.capacity() + fij.capacity() + eatoms.capacity()) * sizeof(double);
  return bytes;
}
