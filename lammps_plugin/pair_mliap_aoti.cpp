/* ----------------------------------------------------------------------
   mlff-distiller LAMMPS plugin: pair style mliap/aoti (see pair_mliap_aoti.h)

   Per step:
   1. positions of local and ghost atoms (plus one padding atom, so that no
      size is ever 0) go to the package's device;
   2. when LAMMPS has reneighboured: element indices, each ghost's local owner
      and every listed neighbour pair; each step the pairs within the cutoff
      are picked from those on the device (Package::keep_pairs_within);
   3. the package (python/mlff_distiller/lammps/aoti.py, ForceStep) returns
      forces, per-atom energies, energy, virial and per-atom virial; forces
      are added to LAMMPS's, the rest when LAMMPS asks for it. Between layers
      it calls the operator mlff_plugin::halo_exchange, registered below and
      served by exchange_rows() of the pair style whose step is running.
------------------------------------------------------------------------- */

#include "pair_mliap_aoti.h"

#include "aoti_protocol.h"
#include "halo_protocol.h"
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
#include <torch/library.h>
#include <torch/torch.h>

#ifdef MLFF_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fstream>
#include <list>

using namespace LAMMPS_NS;

#ifndef MLFF_TORCH_VERSION
#error "MLFF_TORCH_VERSION (the torch version the plugin is built against) must be defined by CMake"
#endif

/* ---------------------------------------------------------------------- */

struct PairMLIAPAoti::Package {
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  std::unordered_map<std::string, std::string> metadata;
  torch::Device device{torch::kCPU};
  at::Tensor x, species, listed_i, listed_j, pair_i, pair_j, ghosts, owners;
  int64_t neighbour_lists = 0;    // how many times species, ghosts and owners were set

  // On several ranks an exchange moves only the rows LAMMPS's communication touches, through a
  // host stage: the local rows it sends (sent_local, on the device) and the ghost rows. stage_row:
  // each LAMMPS row's row in the stage (StudentPair::communicate). Made at the first exchange
  // after each neighbour-list build (staged_at: that build, Neighbor::ncalls, the same on all ranks).
  at::Tensor sent_local;
  std::vector<int> stage_row;
  bigint staged_at = -1;

  // The listed pairs reach the cutoff plus LAMMPS's skin: with a 5 A cutoff and a 2 A skin
  // ~64% of them lie beyond the cutoff, where they would add exactly zero at the full cost of
  // an edge (a GPU package that got them all took 44 ms per step for 8,232 waters, H200,
  // 2026-12-05). They are dropped where the positions already are, with no host loop; the order
  // (by receiver) stays, and the padding atom's pair with itself (distance 0) keeps it non-empty.
  void keep_pairs_within(double cutoff)
  {
    const at::Tensor d = x.index_select(0, listed_j) - x.index_select(0, listed_i);
    const at::Tensor kept = (d.square().sum(1) < cutoff * cutoff).nonzero().squeeze(1);
    pair_i = listed_i.index_select(0, kept);
    pair_j = listed_j.index_select(0, kept);
  }

  // a copy on the package's device (never a view of the vector, also on a CPU)
  at::Tensor on_device(std::vector<int64_t> &values) const
  {
    return torch::from_blob(values.data(), {(int64_t) values.size()}, torch::kLong)
        .to(device, /*non_blocking=*/false, /*copy=*/true);
  }

  // On one MPI rank on a GPU the step is a CUDA graph replayed: launching the compiled step's
  // kernels one by one cost a fixed ~1.1 ms per step (21 and 336 atoms, H200, 2026-12-05). A
  // graph holds fixed sizes, so the inputs are padded to a series of sizes (padding atoms join
  // only themselves, which the package drops) and one graph is captured per padded size. On
  // several ranks the exchanges between layers go through the host: no graph.
  bool graphs = false;
  std::vector<at::Tensor> run(const std::vector<at::Tensor> &inputs);

#ifdef MLFF_CUDA_GRAPHS
  // one captured step: its padded inputs (in the package's order) and outputs, both in place
  struct Replay {
    std::vector<at::Tensor> inputs, outputs;
    at::cuda::CUDAGraph graph;
    bool captured = false;
    int64_t neighbour_list = -1;    // the one whose species, ghosts and owners the inputs hold
  };
  using Sizes = std::array<int64_t, 4>;    // local atoms, ghost rows, pairs, ghost list
  static constexpr size_t MAX_REPLAYS = 3;
  std::list<std::pair<Sizes, std::unique_ptr<Replay>>> replays;    // most recently used first

  Replay &replay_for(const std::vector<at::Tensor> &inputs);
  void capture(Replay &r);
#endif
};

/* ----------------------------------------------------------------------
   the package's call: a graph replayed, or the compiled step launched
------------------------------------------------------------------------- */

namespace {

#ifdef MLFF_CUDA_GRAPHS
// the padded size for n: of the series 64, 72, 81, ... (each ~1/8 larger, a multiple of 16), as
// the Python step's buckets (python/mlff_distiller/model/replay.py)
int64_t padded_size(int64_t n)
{
  int64_t size = 64;
  while (size < n) size = (size + size / 8 + 15) / 16 * 16;
  return size;
}

// rows of src at the front of dst, the rest filled with value
void copy_padded(at::Tensor &dst, const at::Tensor &src, double value)
{
  const int64_t n = src.size(0);
  dst.narrow(0, 0, n).copy_(src);
  if (dst.size(0) > n) dst.narrow(0, n, dst.size(0) - n).fill_(value);
}
#endif

}    // namespace

std::vector<at::Tensor> PairMLIAPAoti::Package::run(const std::vector<at::Tensor> &inputs)
{
#ifdef MLFF_CUDA_GRAPHS
  if (graphs) {
    Replay &r = replay_for(inputs);
    if (!r.captured) capture(r);
    r.graph.replay();
    return r.outputs;
  }
#endif
  return loader->run(inputs);
}

#ifdef MLFF_CUDA_GRAPHS
// the replay for the inputs' padded sizes (a new one, not yet captured, where none is kept), with
// the inputs copied in: x_local, x_ghost, species, pair_i, pair_j, ghosts, owners
PairMLIAPAoti::Package::Replay &
PairMLIAPAoti::Package::replay_for(const std::vector<at::Tensor> &inputs)
{
  const Sizes sizes{inputs[0].size(0), padded_size(inputs[1].size(0)),
                    padded_size(inputs[3].size(0)), padded_size(inputs[5].size(0))};
  auto kept = replays.begin();
  while (kept != replays.end() && kept->first != sizes) ++kept;
  if (kept != replays.end()) {
    replays.splice(replays.begin(), replays, kept);
  } else {
    auto r = std::make_unique<Replay>();
    const auto positions = torch::TensorOptions(torch::kDouble).device(device);
    const auto indices = torch::TensorOptions(torch::kLong).device(device);
    r->inputs = {torch::empty({sizes[0], 3}, positions),
                 torch::zeros({sizes[1], 3}, positions),
                 torch::zeros({sizes[0] + sizes[1]}, indices),
                 torch::empty({sizes[2]}, indices),
                 torch::empty({sizes[2]}, indices),
                 torch::empty({sizes[3]}, indices),
                 torch::empty({sizes[3]}, indices)};
    replays.emplace_front(sizes, std::move(r));
    if (replays.size() > MAX_REPLAYS) replays.pop_back();
  }
  Replay &r = *replays.front().second;
  // padding atoms: the last rows, at the origin, of element 0; padding pairs and ghost-list
  // entries join the last of them to itself
  const double last = (double) (sizes[0] + sizes[1] - 1);
  r.inputs[0].copy_(inputs[0]);
  copy_padded(r.inputs[1], inputs[1], 0.0);
  copy_padded(r.inputs[3], inputs[3], last);
  copy_padded(r.inputs[4], inputs[4], last);
  if (r.neighbour_list != neighbour_lists) {    // they change only when LAMMPS reneighbours
    copy_padded(r.inputs[2], inputs[2], 0.0);
    copy_padded(r.inputs[5], inputs[5], last);
    copy_padded(r.inputs[6], inputs[6], last);
    r.neighbour_list = neighbour_lists;
  }
  return r;
}

void PairMLIAPAoti::Package::capture(Replay &r)
{
  torch::cuda::synchronize(device.index());    // the inputs' copies, made on the current stream
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device.index());
  try {
    c10::cuda::CUDAStreamGuard on_side(side);
    loader->run(r.inputs);    // once outside the graph: lazy initialisations stay out of it
    side.synchronize();
    r.graph.capture_begin();
    r.outputs = loader->run(r.inputs);
    r.graph.capture_end();
  } catch (const std::exception &e) {
    throw std::runtime_error(fmt::format(
        "capturing the step as a CUDA graph failed ({}); MLFF_CUDA_GRAPHS=0 in the environment "
        "runs it without graphs",
        utils::split_lines(e.what())[0]));
  }
  r.captured = true;
}
#endif

/* ----------------------------------------------------------------------
   the operator the packages call between layers (its Python twin, for export
   and tests: plugin_halo_exchange in aoti.py). Registered when the first
   package loads; the schema only where nothing (a Python session that
   exported a package in this process) defined it already.
------------------------------------------------------------------------- */

namespace {

// this rank's index among the ranks of its node: which of the node's GPUs it takes
int node_local_rank(MPI_Comm world)
{
  MPI_Comm node;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int rank = 0;
  MPI_Comm_rank(node, &rank);
  MPI_Comm_free(&node);
  return rank;
}

PairMLIAPAoti *stepping = nullptr;    // the pair style whose package is running

at::Tensor halo_exchange_operator(const at::Tensor &rows, const at::Tensor &ghosts,
                                  const at::Tensor &owners, bool reverse)
{
  if (!stepping)
    throw std::runtime_error("mlff_plugin::halo_exchange was called outside a mliap/aoti step");
  return stepping->exchange_rows(rows, ghosts, owners, reverse);
}

void register_halo_exchange_operator()
{
  static std::unique_ptr<torch::Library> schema, kernel;
  if (kernel) return;
  if (!c10::Dispatcher::singleton().findSchema({"mlff_plugin::halo_exchange", ""})) {
    schema = std::make_unique<torch::Library>(torch::Library::DEF, "mlff_plugin", std::nullopt,
                                              __FILE__, __LINE__);
    schema->def("halo_exchange(Tensor rows, Tensor ghosts, Tensor owners, bool reverse) -> Tensor");
  }
  kernel = std::make_unique<torch::Library>(torch::Library::IMPL, "mlff_plugin",
                                            c10::DispatchKey::CompositeExplicitAutograd, __FILE__,
                                            __LINE__);
  kernel->impl("halo_exchange", TORCH_FN(halo_exchange_operator));
}

// the fused kernels' operators (mlff_fused::*), which a CPU package calls: registered by the
// environment's libmlff_fused.so, found beside this plugin (aoti_protocol.h FUSED_LIBRARY); an
// empty string when they are registered, else what went wrong
std::string load_fused_kernels()
{
  if (c10::Dispatcher::singleton().findSchema({"mlff_fused::message_forward", ""})) return "";
  Dl_info self;
  if (!dladdr((void *) &load_fused_kernels, &self) || !self.dli_fname)
    return "the plugin cannot tell its own folder";
  std::string folder(self.dli_fname);
  folder = folder.substr(0, folder.find_last_of('/') + 1);
  const std::string path = folder + MLFFAoti::FUSED_LIBRARY;
  if (!dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL))
    return fmt::format("{} did not load: {}", path, dlerror());
  return "";
}

// the running pair style for the operator, for the duration of one package call
struct Stepping {
  explicit Stepping(PairMLIAPAoti *pair) { stepping = pair; }
  ~Stepping() { stepping = nullptr; }
};

}    // namespace

/* ---------------------------------------------------------------------- */

PairMLIAPAoti::PairMLIAPAoti(LAMMPS *lmp) : StudentPair(lmp, "mliap/aoti") {}

/* ----------------------------------------------------------------------
   pair_style mliap/aoti FILE.pt2
------------------------------------------------------------------------- */

void PairMLIAPAoti::settings(int narg, char **arg)
{
  if (narg != 1)
    error->all(FLERR,
               "Illegal pair_style mliap/aoti command: expected pair_style mliap/aoti FILE.pt2");
  model_file = arg[0];
  package = std::make_unique<Package>();
  read_package_metadata();
  load_package();
}

/* ----------------------------------------------------------------------
   the package's metadata, checked against this plugin before anything runs
------------------------------------------------------------------------- */

void PairMLIAPAoti::read_package_metadata()
{
  if (!std::ifstream(model_file).good())
    error->all(FLERR, "Pair style mliap/aoti: cannot read {}: write it with `{}`", model_file,
               MLFFAoti::EXPORT_COMMAND);
  auto &meta = package->metadata;
  try {
    meta = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(
        model_file, MLFFAoti::ONE_RANK_MODEL);
  } catch (const std::exception &e) {
    error->all(FLERR,
               "Pair style mliap/aoti: {} is not an AOTInductor package of format {}, with a "
               "model '{}' ({}): write one with `{}`",
               model_file, MLFFAoti::FORMAT_VERSION, MLFFAoti::ONE_RANK_MODEL,
               utils::split_lines(e.what())[0], MLFFAoti::EXPORT_COMMAND);
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
        model_file, MLFFAoti::EXPORT_COMMAND);
  if (value("mlff_format_version") != MLFFAoti::FORMAT_VERSION ||
      value("inputs") != MLFFAoti::INPUTS || value("outputs") != MLFFAoti::OUTPUTS)
    error->all(FLERR,
               "Pair style mliap/aoti: {} has package format {} (written by mlff-distiller {}, "
               "inputs {}, outputs {}) but this plugin reads format {} (inputs {}, outputs {}): "
               "re-export it with `{}`, or rebuild the plugin from the same mlff-distiller",
               model_file, value("mlff_format_version"), value("mlff_version"), value("inputs"),
               value("outputs"), MLFFAoti::FORMAT_VERSION, MLFFAoti::INPUTS, MLFFAoti::OUTPUTS,
               MLFFAoti::EXPORT_COMMAND);
  if (value("torch_version") != MLFF_TORCH_VERSION)
    error->all(FLERR,
               "Pair style mliap/aoti: {} was compiled by torch {} but this plugin runs torch {}: "
               "re-export it with the torch the plugin links (`{}`)",
               model_file, value("torch_version"), MLFF_TORCH_VERSION, MLFFAoti::EXPORT_COMMAND);
  const std::string device = value("AOTI_DEVICE_KEY");
  if (device == "cuda" && !torch::cuda::is_available())
    error->all(FLERR,
               "Pair style mliap/aoti: {} was compiled for a CUDA GPU but this process sees none "
               "(torch {}): export it for this machine with `{}` and --device cpu",
               model_file, MLFF_TORCH_VERSION, MLFFAoti::EXPORT_COMMAND);
  if (device != "cuda" && device != "cpu")
    error->all(FLERR,
               "Pair style mliap/aoti: {} was compiled for device '{}'; this plugin runs "
               "cpu and cuda packages: re-export it with `{}`",
               model_file, device, MLFFAoti::EXPORT_COMMAND);
  package->device = device == "cuda"
      ? torch::Device(torch::kCUDA, node_local_rank(world) % torch::cuda::device_count())
      : torch::Device(torch::kCPU);
  elements = utils::split_words(value("elements"));
  cutoff = utils::numeric(FLERR, value("cutoff"), false, lmp);
  if (elements.empty() || cutoff <= 0.0)
    error->all(FLERR,
               "Pair style mliap/aoti: {} names no elements or no positive cutoff: "
               "re-export it with `{}`",
               model_file, MLFFAoti::EXPORT_COMMAND);
}

/* ---------------------------------------------------------------------- */

void PairMLIAPAoti::load_package()
{
  register_halo_exchange_operator();
  if (package->metadata[MLFFAoti::FUSED_KERNELS_KEY] == "1") {
    std::string problem = load_fused_kernels();
    if (!problem.empty())
      problem = fmt::format(
          "Pair style mliap/aoti: {} calls the fused kernels of mlff-distiller, but {}: run "
          "`make setup` (it installs them beside the plugin), or re-export the package with "
          "MLFF_FUSED=0 in the environment",
          model_file, problem);
    stop_on_problems(problem, ranks_with_problem(!problem.empty()));    // a file system's, maybe
  }
  const char *model = comm->nprocs == 1 ? MLFFAoti::ONE_RANK_MODEL : MLFFAoti::RANKS_MODEL;
#ifdef MLFF_CUDA_GRAPHS
  const char *graphs_setting = std::getenv("MLFF_CUDA_GRAPHS");
  package->graphs = package->device.is_cuda() && comm->nprocs == 1 &&
      !(graphs_setting && std::string(graphs_setting) == "0");
#endif
  std::string problem;
  try {
    // single-threaded runs: the runner then waits on no event of its own, which a capture forbids
    package->loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
        model_file, model, package->graphs, 1,
        package->device.is_cuda() ? package->device.index() : -1);
  } catch (const std::exception &e) {
    problem = fmt::format(
        "Pair style mliap/aoti: cannot load {} on {} ({}): re-export it on this machine with `{}`",
        model_file, package->device.str(), utils::split_lines(e.what())[0],
        MLFFAoti::EXPORT_COMMAND);
  }
  stop_on_problems(problem, ranks_with_problem(!problem.empty()));    // some ranks' GPU, maybe
  auto &meta = package->metadata;
  const std::string where = package->device.is_cpu()
      ? fmt::format("cpu ({} thread(s), fixed at export)", meta["cpu_threads"])
      : package->device.str() + (package->graphs ? ", CUDA graphs" : "");
  if (comm->me == 0)
    utils::logmesg(lmp, "mliap/aoti: {} ({} {}, elements {}, cutoff {} A) on {}\n", model_file,
                   meta["method"], meta["dtype"], meta["elements"], cutoff, where);
}

/* ---------------------------------------------------------------------- */

void PairMLIAPAoti::init_style()
{
  if (!package) error->all(FLERR, "Pair style mliap/aoti: no package loaded");
  MLFFSettings::check_model_settings(lmp, "mliap/aoti");
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

/* ---------------------------------------------------------------------- */

void PairMLIAPAoti::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  const int nlocal = atom->nlocal;
  const int ntotal = nlocal + atom->nghost;
  Package &p = *package;    // a rank without atoms runs it too: the exchanges are collective

  const bool rebuilt = neighbor->ago == 0 || (int64_t) species.size() != ntotal + 1;
  if (rebuilt) {
    collect_neighbours();
    collect_pairs();
    p.listed_i = p.on_device(pair_i);
    p.listed_j = p.on_device(pair_j);
  }
  // the padding row (last) keeps the zeros it got at collect_neighbours
  p.x.narrow(0, 0, ntotal).copy_(torch::from_blob(atom->x[0], {ntotal, 3}, torch::kDouble));

  try {
    p.keep_pairs_within(cutoff);
    add_outputs();
  } catch (const c10::Error &e) {
    error->one(FLERR, "Pair style mliap/aoti: the model failed on {} atoms and {} listed pairs: {}",
               ntotal, pair_i.size() - 1, e.what_without_backtrace());
  } catch (const std::exception &e) {
    error->one(FLERR, "Pair style mliap/aoti: the model failed on {} atoms and {} listed pairs: {}",
               ntotal, pair_i.size() - 1, e.what());
  }
}

/* ----------------------------------------------------------------------
   what changes only when LAMMPS reneighbours: element of every atom, on one
   rank each ghost's local owner (one forward exchange of the local indices:
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

  ghosts.clear();
  owners.clear();
  if (comm->nprocs == 1) {    // on several ranks the exchange goes through LAMMPS: no owners
    const std::vector<int> owner = local_owners();
    for (int i = nlocal; i < ntotal; i++) {
      if (owner[i] < 0)
        error->one(FLERR, "Pair style mliap/aoti: ghost atom {} (ID {}) has no local owner", i,
                   atom->tag[i]);
      ghosts.push_back(i);
      owners.push_back(owner[i]);
    }
  }
  ghosts.push_back(pad);
  owners.push_back(pad);

  Package &p = *package;
  p.species = p.on_device(species);
  p.ghosts = p.on_device(ghosts);
  p.owners = p.on_device(owners);
  p.neighbour_lists++;
  p.x = torch::zeros({ntotal + 1, 3}, torch::TensorOptions(torch::kDouble).device(p.device));
}

/* ----------------------------------------------------------------------
   every pair of LAMMPS's full list (i receives from j) whose receiver has an
   element, plus the padding atom's pair with itself
------------------------------------------------------------------------- */

void PairMLIAPAoti::collect_pairs()
{
  pair_i.clear();
  pair_j.clear();
  for (int ii = 0; ii < list->inum; ii++) {
    const int i = list->ilist[ii];
    if (species[i] < 0) continue;
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; jj++) {
      pair_i.push_back(i);
      pair_j.push_back(jlist[jj] & NEIGHMASK);
    }
  }
  const int64_t pad = (int64_t) species.size() - 1;
  pair_i.push_back(pad);
  pair_j.push_back(pad);
}

/* ----------------------------------------------------------------------
   run the package and add what LAMMPS asked for
------------------------------------------------------------------------- */

void PairMLIAPAoti::add_outputs()
{
  Package &p = *package;
  const int nlocal = atom->nlocal;
  const int ntotal = nlocal + atom->nghost;
  std::vector<at::Tensor> out;
  {
    Stepping running(this);
    // local and ghost rows as two views of one buffer, the ghosts' copied where they do not start
    // on 16 bytes: the package was compiled for aligned inputs (it would copy them itself, warning
    // at every step)
    at::Tensor x_ghost = p.x.narrow(0, nlocal, atom->nghost + 1);
    if (reinterpret_cast<uintptr_t>(x_ghost.data_ptr()) % 16) x_ghost = x_ghost.clone();
    out = p.run(
        {p.x.narrow(0, 0, nlocal), x_ghost, p.species, p.pair_i, p.pair_j, p.ghosts, p.owners});
  }
  if (out.size() != MLFFAoti::NOUTPUTS)
    error->one(FLERR, "Pair style mliap/aoti: {} returned {} outputs, expected {} ({})", model_file,
               out.size(), (int) MLFFAoti::NOUTPUTS, MLFFAoti::OUTPUTS);
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

at::Tensor PairMLIAPAoti::exchange_rows(const at::Tensor &rows, const at::Tensor &ghosts,
                                        const at::Tensor &owners, bool reverse)
{
  if (comm->nprocs == 1) {    // every ghost is an image of a local atom: device operations
    if (reverse)
      return rows.index_add(0, owners, rows.index_select(0, ghosts)).index_fill(0, ghosts, 0);
    return rows.index_copy(0, ghosts, rows.index_select(0, owners));
  }
  // LAMMPS's communication on a host stage of the rows it touches (the padding row stays as it is)
  if (rows.dim() != 2 || rows.size(1) == 0 ||
      (rows.scalar_type() != at::kDouble && rows.scalar_type() != at::kFloat))
    throw std::runtime_error(
        "mlff_plugin::halo_exchange takes [atoms, width > 0] float64 or float32 rows");
  Package &p = *package;
  if (p.staged_at != neighbor->ncalls) stage_rows();
  const int nlocal = atom->nlocal, nghost = atom->nghost;
  const int64_t n_sent = p.sent_local.size(0), width = rows.size(1);
  // pinned when the rows are on a GPU: copies from and to page-locked memory are the fast ones
  at::Tensor stage = at::empty({n_sent + nghost, width},
                               rows.options().device(at::kCPU).pinned_memory(rows.is_cuda()));
  at::Tensor out = rows.contiguous().clone();
  const int dtype = rows.scalar_type() == at::kDouble ? MLFFHalo::FLOAT64 : MLFFHalo::FLOAT32;
  if (!reverse) {
    stage.narrow(0, 0, n_sent).copy_(out.index_select(0, p.sent_local));
  } else {
    stage.narrow(0, 0, n_sent).zero_();
    stage.narrow(0, n_sent, nghost).copy_(out.narrow(0, nlocal, nghost));
  }
  communicate(stage.data_ptr(), p.stage_row.data(), (int) width, dtype, reverse ? 1 : 0);
  if (!reverse) {
    out.narrow(0, nlocal, nghost).copy_(stage.narrow(0, n_sent, nghost));
  } else {
    out.index_add_(0, p.sent_local, stage.narrow(0, 0, n_sent).to(out.device()));
    out.narrow(0, nlocal, nghost).zero_();
  }
  return out;
}

/* ----------------------------------------------------------------------
   the host stage of the exchanges on several ranks: the local rows that
   LAMMPS's forward communication sends, then every ghost row
------------------------------------------------------------------------- */

void PairMLIAPAoti::stage_rows()
{
  Package &p = *package;
  const int nlocal = atom->nlocal, ntotal = nlocal + atom->nghost;
  std::vector<int64_t> sent_local;
  for (const int row : sent_rows())
    if (row < nlocal) sent_local.push_back(row);
  p.stage_row.assign(ntotal, -1);
  for (size_t k = 0; k < sent_local.size(); k++) p.stage_row[sent_local[k]] = (int) k;
  for (int g = nlocal; g < ntotal; g++) p.stage_row[g] = (int) sent_local.size() + g - nlocal;
  p.sent_local = p.on_device(sent_local);
  p.staged_at = neighbor->ncalls;
}

/* ---------------------------------------------------------------------- */

double PairMLIAPAoti::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (double) (species.capacity() + ghosts.capacity() + owners.capacity() +
                     pair_i.capacity() + pair_j.capacity()) *
      sizeof(int64_t);
  return bytes;
}
