/* ----------------------------------------------------------------------
   mlff-distiller LAMMPS plugin: pair style mliap/aoti (see pair_mliap_aoti.h)

   Per step:
   1. positions of local and ghost atoms (plus one padding atom, so that no
      size is ever 0) go to the package's device;
   2. when LAMMPS has reneighboured: element indices, each ghost's local owner
      and the neighbour pairs (on a CPU the pairs within the cutoff are
      collected every step instead: see Package::pairs_every_step);
   3. the package (python/mlff_distiller/lammps/aoti.py, ForceStep) returns
      forces, per-atom energies, energy, virial and per-atom virial; forces
      are added to LAMMPS's, the rest when LAMMPS asks for it.
------------------------------------------------------------------------- */

#include "pair_mliap_aoti.h"

#include "aoti_protocol.h"
#include "model_settings.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "utils.h"

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

using namespace LAMMPS_NS;

#ifndef MLFF_TORCH_VERSION
#error "MLFF_TORCH_VERSION (the torch version the plugin is built against) must be defined by CMake"
#endif

/* ---------------------------------------------------------------------- */

struct PairMLIAPAoti::Package {
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  std::unordered_map<std::string, std::string> metadata;
  torch::Device device{torch::kCPU};
  at::Tensor x, species, pair_i, pair_j, ghosts, owners, nlocal;

  // On a CPU the positions are where the model runs, and pairs in the skin would be ~60% of the
  // model's edge work (5 A cutoff, 2 A skin): they are dropped on the host every step. On a GPU a
  // host loop per step is what this style avoids: the whole list goes once per neighbour list
  // and the package masks the pairs beyond the cutoff (they add exactly zero).
  bool pairs_every_step() const { return device.is_cpu(); }

  at::Tensor on_device(std::vector<int64_t> &values) const
  { return torch::from_blob(values.data(), {(int64_t) values.size()}, torch::kLong).to(device); }
};

/* ---------------------------------------------------------------------- */

PairMLIAPAoti::PairMLIAPAoti(LAMMPS *lmp) : Pair(lmp), cutoff(0.0), map(nullptr)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  no_virial_fdotr_compute = 1;    // the package returns the virial
  comm_forward = 1;               // owner_index
}

/* ---------------------------------------------------------------------- */

PairMLIAPAoti::~PairMLIAPAoti()
{
  if (copymode) return;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(map);
  }
}

/* ---------------------------------------------------------------------- */

void PairMLIAPAoti::allocate()
{
  allocated = 1;
  int n = atom->ntypes;
  memory->create(setflag, n + 1, n + 1, "pair:setflag");
  memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
  memory->create(map, n + 1, "pair:map");
  for (int i = 0; i <= n; i++) map[i] = -1;
}

/* ----------------------------------------------------------------------
   pair_style mliap/aoti FILE.pt2
------------------------------------------------------------------------- */

void PairMLIAPAoti::settings(int narg, char **arg)
{
  if (narg != 1)
    error->all(FLERR,
               "Illegal pair_style mliap/aoti command: expected pair_style mliap/aoti FILE.pt2");
  package_file = arg[0];
  package = std::make_unique<Package>();
  read_package_metadata();
  load_package();
}

/* ----------------------------------------------------------------------
   the package's metadata, checked against this plugin before anything runs
------------------------------------------------------------------------- */

void PairMLIAPAoti::read_package_metadata()
{
  if (!std::ifstream(package_file).good())
    error->all(FLERR, "Pair style mliap/aoti: cannot read {}: write it with `{}`", package_file,
               MLFFAoti::EXPORT_COMMAND);
  auto &meta = package->metadata;
  try {
    meta =
        torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(package_file, "model");
  } catch (const std::exception &e) {
    error->all(FLERR,
               "Pair style mliap/aoti: {} is not an AOTInductor package ({}): write one with `{}`",
               package_file, utils::split_lines(e.what())[0], MLFFAoti::EXPORT_COMMAND);
  }
  auto value = [&meta](const char *key) {
    auto found = meta.find(key);
    return found == meta.end() ? std::string("(none)") : found->second;
  };
  if (value("mlff_format") != MLFFAoti::FORMAT)
    error->all(
        FLERR,
        "Pair style mliap/aoti: {} is an AOTInductor package but not one of mlff-distiller's "
        "force steps: write one with `{}`",
        package_file, MLFFAoti::EXPORT_COMMAND);
  if (value("mlff_format_version") != MLFFAoti::FORMAT_VERSION ||
      value("inputs") != MLFFAoti::INPUTS || value("outputs") != MLFFAoti::OUTPUTS)
    error->all(FLERR,
               "Pair style mliap/aoti: {} has package format {} (written by mlff-distiller {}, "
               "inputs {}, outputs {}) but this plugin reads format {} (inputs {}, outputs {}): "
               "re-export it with `{}`, or rebuild the plugin from the same mlff-distiller",
               package_file, value("mlff_format_version"), value("mlff_version"), value("inputs"),
               value("outputs"), MLFFAoti::FORMAT_VERSION, MLFFAoti::INPUTS, MLFFAoti::OUTPUTS,
               MLFFAoti::EXPORT_COMMAND);
  if (value("torch_version") != MLFF_TORCH_VERSION)
    error->all(FLERR,
               "Pair style mliap/aoti: {} was compiled by torch {} but this plugin runs torch {}: "
               "re-export it with the torch the plugin links (`{}`)",
               package_file, value("torch_version"), MLFF_TORCH_VERSION, MLFFAoti::EXPORT_COMMAND);
  const std::string device = value("AOTI_DEVICE_KEY");
  if (device == "cuda" && !torch::cuda::is_available())
    error->all(FLERR,
               "Pair style mliap/aoti: {} was compiled for a CUDA GPU but this process sees none "
               "(torch {}): export it for this machine with `{}` and --device cpu",
               package_file, MLFF_TORCH_VERSION, MLFFAoti::EXPORT_COMMAND);
  if (device != "cuda" && device != "cpu")
    error->all(FLERR,
               "Pair style mliap/aoti: {} was compiled for device '{}'; this plugin runs "
               "cpu and cuda packages: re-export it with `{}`",
               package_file, device, MLFFAoti::EXPORT_COMMAND);
  package->device = device == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  elements = utils::split_words(value("elements"));
  cutoff = utils::numeric(FLERR, value("cutoff"), false, lmp);
  if (elements.empty() || cutoff <= 0.0)
    error->all(FLERR,
               "Pair style mliap/aoti: {} names no elements or no positive cutoff: "
               "re-export it with `{}`",
               package_file, MLFFAoti::EXPORT_COMMAND);
}

/* ---------------------------------------------------------------------- */

void PairMLIAPAoti::load_package()
{
  try {
    package->loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
        package_file, "model", false, 1, package->device.is_cuda() ? 0 : -1);
  } catch (const std::exception &e) {
    error->all(FLERR,
               "Pair style mliap/aoti: cannot load {} on {} ({}): re-export it on this "
               "machine with `{}`",
               package_file, package->device.str(), utils::split_lines(e.what())[0],
               MLFFAoti::EXPORT_COMMAND);
  }
  auto &meta = package->metadata;
  const std::string where = package->device.is_cpu()
      ? fmt::format("cpu ({} thread(s), fixed at export)", meta["cpu_threads"])
      : package->device.str();
  if (comm->me == 0)
    utils::logmesg(lmp, "mliap/aoti: {} ({} {}, elements {}, cutoff {} A) on {}\n", package_file,
                   meta["method"], meta["dtype"], meta["elements"], cutoff, where);
}

/* ----------------------------------------------------------------------
   pair_coeff * * El1 El2 ... (NULL for types the model leaves out)
------------------------------------------------------------------------- */

void PairMLIAPAoti::coeff(int narg, char **arg)
{
  if (!package) error->all(FLERR, "Pair style mliap/aoti: pair_coeff before pair_style");
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 2 + ntypes || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR,
               "Incorrect args for pair_coeff of pair style mliap/aoti: expected pair_coeff * * "
               "followed by one element (or NULL) for each of the {} atom types",
               ntypes);
  for (int i = 1; i <= ntypes; i++) {
    const char *name = arg[i + 1];
    map[i] = -1;
    if (strcmp(name, "NULL") == 0) continue;
    for (int k = 0; k < (int) elements.size(); k++)
      if (elements[k] == name) map[i] = k;
    if (map[i] < 0)
      error->all(FLERR,
                 "Pair style mliap/aoti: element {} (atom type {}) is not one of the elements of "
                 "{}: {}",
                 name, i, package_file, utils::join_words(elements, " "));
  }
  int count = 0;
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) {
      setflag[i][j] = (map[i] >= 0 && map[j] >= 0) ? 1 : 0;
      count += setflag[i][j];
    }
  if (count == 0) error->all(FLERR, "Incorrect args for pair coefficients: every type is NULL");
}

/* ---------------------------------------------------------------------- */

void PairMLIAPAoti::init_style()
{
  if (!package) error->all(FLERR, "Pair style mliap/aoti: no package loaded");
  if (comm->nprocs > 1)
    error->all(FLERR,
               "Pair style mliap/aoti runs on one MPI rank (its package gathers ghost features "
               "from local atoms) but this run has {}: run the same model on several ranks with "
               "`pair_style mliap/halo FILE.mliap` (the export beside the .pt2)",
               comm->nprocs);
  MLFFSettings::check_model_settings(lmp, "mliap/aoti");
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

/* ---------------------------------------------------------------------- */

double PairMLIAPAoti::init_one(int i, int j)
{
  if (setflag[i][j] == 0) error->all(FLERR, "All pair coeffs are not set");
  return cutoff;
}

/* ---------------------------------------------------------------------- */

void PairMLIAPAoti::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  const int nlocal = atom->nlocal;
  const int ntotal = nlocal + atom->nghost;
  if (nlocal == 0) return;
  Package &p = *package;

  const bool rebuilt = neighbor->ago == 0 || (int64_t) species.size() != ntotal + 1;
  if (rebuilt) collect_neighbours();
  if (rebuilt || p.pairs_every_step()) {
    collect_pairs(p.pairs_every_step());
    p.pair_i = p.on_device(pair_i);
    p.pair_j = p.on_device(pair_j);
  }
  // the padding row (last) keeps the zeros it got at collect_neighbours
  p.x.narrow(0, 0, ntotal).copy_(torch::from_blob(atom->x[0], {ntotal, 3}, torch::kDouble));

  try {
    add_outputs();
  } catch (const c10::Error &e) {
    error->one(FLERR, "Pair style mliap/aoti: the model failed on {} atoms and {} pairs: {}",
               ntotal, pair_i.size() - 1, e.what_without_backtrace());
  } catch (const std::exception &e) {
    error->one(FLERR, "Pair style mliap/aoti: the model failed on {} atoms and {} pairs: {}",
               ntotal, pair_i.size() - 1, e.what());
  }
}

/* ----------------------------------------------------------------------
   what changes only when LAMMPS reneighbours: element of every atom, each
   ghost's local owner (one forward exchange of the local indices: on one rank
   every ghost is an image of a local atom), the padding atom
------------------------------------------------------------------------- */

void PairMLIAPAoti::collect_neighbours()
{
  const int nlocal = atom->nlocal;
  const int ntotal = nlocal + atom->nghost;
  const int pad = ntotal;
  species.resize(ntotal + 1);
  for (int i = 0; i < ntotal; i++) species[i] = map[atom->type[i]];
  species[pad] = 0;

  owner_index.assign(ntotal, -1.0);
  for (int i = 0; i < nlocal; i++) owner_index[i] = i;
  comm->forward_comm(this);
  ghosts.clear();
  owners.clear();
  for (int i = nlocal; i < ntotal; i++) {
    if (owner_index[i] < 0)
      error->one(FLERR, "Pair style mliap/aoti: ghost atom {} (ID {}) has no local owner", i,
                 atom->tag[i]);
    ghosts.push_back(i);
    owners.push_back((int64_t) owner_index[i]);
  }
  ghosts.push_back(pad);
  owners.push_back(pad);

  Package &p = *package;
  p.species = p.on_device(species);
  p.ghosts = p.on_device(ghosts);
  p.owners = p.on_device(owners);
  p.nlocal = torch::full({1}, (int64_t) nlocal, torch::kLong).to(p.device);
  p.x = torch::zeros({ntotal + 1, 3}, torch::TensorOptions(torch::kDouble).device(p.device));
}

/* ----------------------------------------------------------------------
   the pairs of LAMMPS's full list (i receives from j), those within the
   cutoff only or all of them, plus the padding atom's pair with itself
------------------------------------------------------------------------- */

void PairMLIAPAoti::collect_pairs(bool within_cutoff)
{
  const double *x = atom->x[0];
  const double cutsq_model = within_cutoff ? cutoff * cutoff : INFINITY;
  const int inum = list->inum;
  size_t listed = 0;
  for (int ii = 0; ii < inum; ii++) listed += list->numneigh[list->ilist[ii]];
  pair_i.resize(listed + 1);
  pair_j.resize(listed + 1);
  size_t n = 0;
  for (int ii = 0; ii < inum; ii++) {
    const int i = list->ilist[ii];
    if (species[i] < 0) continue;
    const int *jlist = list->firstneigh[i];
    const int jnum = list->numneigh[i];
    // every neighbour is written and kept or overwritten by the next: which are inside the
    // cutoff is unpredictable, and a branch would stall
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[3 * j] - x[3 * i], dy = x[3 * j + 1] - x[3 * i + 1],
                   dz = x[3 * j + 2] - x[3 * i + 2];
      pair_i[n] = i;
      pair_j[n] = j;
      n += dx * dx + dy * dy + dz * dz < cutsq_model;
    }
  }
  const int64_t pad = (int64_t) species.size() - 1;
  pair_i[n] = pad;
  pair_j[n] = pad;
  pair_i.resize(n + 1);
  pair_j.resize(n + 1);
}

/* ----------------------------------------------------------------------
   run the package and add what LAMMPS asked for
------------------------------------------------------------------------- */

void PairMLIAPAoti::add_outputs()
{
  Package &p = *package;
  const int nlocal = atom->nlocal;
  const int ntotal = nlocal + atom->nghost;
  std::vector<at::Tensor> out =
      p.loader->run({p.x, p.species, p.pair_i, p.pair_j, p.ghosts, p.owners, p.nlocal});
  if (out.size() != MLFFAoti::NOUTPUTS)
    error->one(FLERR, "Pair style mliap/aoti: {} returned {} outputs, expected {} ({})",
               package_file, out.size(), (int) MLFFAoti::NOUTPUTS, MLFFAoti::OUTPUTS);
  auto host = [&out](int k) {
    return out[k].to(torch::kCPU, torch::kDouble).contiguous();
  };

  const at::Tensor forces = host(MLFFAoti::FORCES);
  const double *fp = forces.data_ptr<double>();
  double *f = atom->f[0];
  double total = 0.0;
  for (int k = 0; k < 3 * ntotal; k++) {
    f[k] += fp[k];
    total += std::fabs(fp[k]);
  }
  if (!std::isfinite(total))
    error->one(FLERR,
               "Pair style mliap/aoti: the model gave non-finite forces: atoms overlap or "
               "left the range the model was trained on (check the structure and the timestep)");

  if (eflag_global) eng_vdwl += out[MLFFAoti::ENERGY].item<double>();
  if (eflag_atom) {
    const at::Tensor e = host(MLFFAoti::EATOMS);
    const double *ep = e.data_ptr<double>();
    for (int i = 0; i < nlocal; i++) eatom[i] += ep[i];
  }
  if (vflag_global) {
    const at::Tensor v = host(MLFFAoti::VIRIAL);
    for (int k = 0; k < 6; k++) virial[k] += v.data_ptr<double>()[k];
  }
  if (vflag_atom) {
    const at::Tensor v = host(MLFFAoti::VATOM);
    const double *vp = v.data_ptr<double>();
    for (int i = 0; i < ntotal; i++)
      for (int k = 0; k < 6; k++) vatom[i][k] += vp[6 * i + k];
  }
}

/* ---------------------------------------------------------------------- */

int PairMLIAPAoti::pack_forward_comm(int n, int *list, double *buf, int /*pbc_flag*/, int * /*pbc*/)
{
  for (int k = 0; k < n; k++) buf[k] = owner_index[list[k]];
  return n;
}

void PairMLIAPAoti::unpack_forward_comm(int n, int first, double *buf)
{
  for (int k = 0; k < n; k++) owner_index[first + k] = buf[k];
}

/* ---------------------------------------------------------------------- */

double PairMLIAPAoti::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (double) (species.capacity() + ghosts.capacity() + owners.capacity() +
                     pair_i.capacity() + pair_j.capacity()) *
      sizeof(int64_t);
  bytes += (double) owner_index.capacity() * sizeof(double);
  return bytes;
}
