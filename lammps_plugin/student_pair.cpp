/* ----------------------------------------------------------------------
   mlff-distiller LAMMPS plugin: what its pair styles share (see student_pair.h)
------------------------------------------------------------------------- */

#include "student_pair.h"

#include "halo_protocol.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "utils.h"

#include <algorithm>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

using namespace LAMMPS_NS;

// doubles of LAMMPS's buffer per atom in one communication pass (comm_forward, comm_reverse):
// rows travel as their own bytes, so a pass carries 128 doubles or 256 floats of a row, and wider
// rows go in several passes
static constexpr int EXCHANGE_SLICE = 128;

/* ----------------------------------------------------------------------
   The model allocates its temporaries afresh at every step (megabytes to
   gigabytes). glibc serves large blocks by mmap and returns freed memory to
   the system, so each step faulted every page in again (one core, 1,029
   waters, mliap/aoti: 343 -> 261 ms per step, mliap/halo 291 -> 227 ms;
   docs/results.md). Kept in the heap instead, a step reuses the last one's pages;
   the process keeps its peak step's memory, as a steady MD run needs anyway.
------------------------------------------------------------------------- */

static void keep_freed_memory_for_the_next_step()
{
#if defined(__GLIBC__)
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

/* ---------------------------------------------------------------------- */

StudentPair::StudentPair(LAMMPS *lmp, const char *style) :
    Pair(lmp), style(style), cutoff(0.0), map(nullptr), xbuf(nullptr), xwidth(0), xoffset(0),
    xcount(0), xdouble(1)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  no_virial_fdotr_compute = 1;    // the virial is tallied from the model's pair gradients
  comm_forward = EXCHANGE_SLICE;
  comm_reverse = EXCHANGE_SLICE;
  keep_freed_memory_for_the_next_step();
}

/* ---------------------------------------------------------------------- */

int StudentPair::ranks_with_problem(bool here)
{
  int mine = here ? 1 : 0, ranks = 0;
  MPI_Allreduce(&mine, &ranks, 1, MPI_INT, MPI_SUM, world);
  return ranks;
}

void StudentPair::stop_on_problems(const std::string &problem, int ranks)
{
  if (!ranks) return;
  if (ranks == comm->nprocs) error->all(FLERR, "{}", problem);
  if (!problem.empty()) error->one(FLERR, "{}", problem);
  error->all(FLERR,
             "Pair style {}: stopped by a problem on {} of {} ranks (their message is above)",
             style, ranks, comm->nprocs);
}

/* ---------------------------------------------------------------------- */

StudentPair::~StudentPair()
{
  if (copymode) return;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(map);
  }
}

/* ---------------------------------------------------------------------- */

void StudentPair::allocate()
{
  allocated = 1;
  int n = atom->ntypes;
  memory->create(setflag, n + 1, n + 1, "pair:setflag");
  memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
  memory->create(map, n + 1, "pair:map");
  for (int i = 0; i <= n; i++) map[i] = -1;
}

/* ----------------------------------------------------------------------
   pair_coeff * * El1 El2 ... (NULL for types the model leaves out)
------------------------------------------------------------------------- */

void StudentPair::coeff(int narg, char **arg)
{
  if (elements.empty()) error->all(FLERR, "Pair style {}: pair_coeff before pair_style", style);
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 2 + ntypes || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR,
               "Incorrect args for pair_coeff of pair style {}: expected pair_coeff * * followed "
               "by one element (or NULL) for each of the {} atom types",
               style, ntypes);
  for (int i = 1; i <= ntypes; i++) {
    const char *name = arg[i + 1];
    map[i] = -1;
    if (strcmp(name, "NULL") == 0) continue;
    for (int k = 0; k < (int) elements.size(); k++)
      if (elements[k] == name) map[i] = k;
    if (map[i] < 0)
      error->all(FLERR,
                 "Pair style {}: element {} (atom type {}) is not one of the elements of model "
                 "{}: {}",
                 style, name, i, model_file, utils::join_words(elements, " "));
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

double StudentPair::init_one(int i, int j)
{
  if (setflag[i][j] == 0) error->all(FLERR, "All pair coeffs are not set");
  return cutoff;
}

/* ----------------------------------------------------------------------
   halo exchange of a C-contiguous [nrows = nlocal + nghost, width] array of
   doubles (dtype 0) or floats (dtype 1): dst = src, then
   forward: every ghost row becomes a copy of its owner's row;
   reverse: every owner row gets the sum of its ghost rows, ghost rows become 0.
   Collective: every rank must call it with the same width.
------------------------------------------------------------------------- */

int StudentPair::exchange(void *src, void *dst, long long nrows, int width, int dtype, int reverse)
{
  const int nlocal = atom->nlocal;
  const long long ntotal = (long long) nlocal + atom->nghost;
  if (nrows != ntotal) return MLFFHalo::BAD_ROWS;
  if (width <= 0) return MLFFHalo::BAD_WIDTH;
  if (dtype != MLFFHalo::FLOAT64 && dtype != MLFFHalo::FLOAT32) return MLFFHalo::BAD_DTYPE;
  const size_t elsize = dtype == MLFFHalo::FLOAT64 ? sizeof(double) : sizeof(float);
  if (ntotal > 0 && (!src || !dst)) return MLFFHalo::NULL_DATA;
  if (ntotal > 0 && src != dst) memcpy(dst, src, (size_t) ntotal * width * elsize);

  communicate(dst, nullptr, width, dtype, reverse);
  if (reverse && ntotal > nlocal)
    memset((char *) dst + (size_t) nlocal * width * elsize, 0,
           (size_t) (ntotal - nlocal) * width * elsize);
  return MLFFHalo::OK;
}

/* ----------------------------------------------------------------------
   LAMMPS's forward (reverse) communication of every row of an array, in
   slices that fit its buffer; LAMMPS's row r is the array's row stage_row[r]
   (nullptr: row r), so a caller may hold only the rows the communication
   touches (the rows of sent_rows() and the ghost rows)
------------------------------------------------------------------------- */

void StudentPair::communicate(void *array, const int *stage_row, int width, int dtype, int reverse)
{
  const size_t elsize = dtype == MLFFHalo::FLOAT64 ? sizeof(double) : sizeof(float);
  xbuf = array;
  xrow = stage_row;
  xwidth = width;
  xdouble = dtype == MLFFHalo::FLOAT64;
  const int slice = EXCHANGE_SLICE * (int) (sizeof(double) / elsize);
  for (xoffset = 0; xoffset < width; xoffset += slice) {
    xcount = MIN(slice, width - xoffset);
    const int doubles_per_atom = (int) ((xcount * elsize + sizeof(double) - 1) / sizeof(double));
    if (reverse)
      comm->reverse_comm(this, doubles_per_atom);
    else
      comm->forward_comm(this, doubles_per_atom);
  }
  xbuf = nullptr;
  xrow = nullptr;
}

/* ---------------------------------------------------------------------- */

std::vector<int> StudentPair::sent_rows()
{
  std::vector<int> rows;
  recording = &rows;
  comm->forward_comm(this, 1);
  recording = nullptr;
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

/* ---------------------------------------------------------------------- */

std::vector<int> StudentPair::local_owners()
{
  const int ntotal = atom->nlocal + atom->nghost;
  std::vector<double> index(ntotal, -1.0);
  for (int i = 0; i < atom->nlocal; i++) index[i] = i;
  exchange(index.data(), index.data(), ntotal, 1, MLFFHalo::FLOAT64, 0);
  return std::vector<int>(index.begin(), index.end());
}

/* ----------------------------------------------------------------------
   the four communication callbacks move the same thing, the slice
   [xoffset, xoffset + xcount) of rows of the exchanged array, between rows and
   LAMMPS's double buffer: one routine, for either element type, in either
   direction, with rows named by a list or counted from a first row. Elements
   travel as their bytes (floats two to a double): exact, and half the traffic
   of converting floats to doubles. Returns the doubles of the buffer used.
------------------------------------------------------------------------- */

namespace {

enum class Move { ROWS_TO_BUFFER, BUFFER_TO_ROWS, BUFFER_ADDED_TO_ROWS };

template <typename T, Move move, typename RowOf>
int move_rows(void *array, const int *stage_row, int width, int offset, int count, int n,
              RowOf row_of, double *buf)
{
  T *a = static_cast<T *>(array);
  char *bytes = reinterpret_cast<char *>(buf);
  const size_t row_bytes = (size_t) count * sizeof(T);
  for (int k = 0; k < n; k++, bytes += row_bytes) {
    const int r = row_of(k);
    T *row = a + (size_t) (stage_row ? stage_row[r] : r) * width + offset;
    if constexpr (move == Move::ROWS_TO_BUFFER) {
      memcpy(bytes, row, row_bytes);
    } else if constexpr (move == Move::BUFFER_TO_ROWS) {
      memcpy(row, bytes, row_bytes);
    } else {
      for (int c = 0; c < count; c++) {
        T value;
        memcpy(&value, bytes + c * sizeof(T), sizeof(T));
        row[c] += value;
      }
    }
  }
  return (int) (((size_t) n * row_bytes + sizeof(double) - 1) / sizeof(double));
}

template <Move move, typename RowOf>
int move_exchange_rows(bool is_double, void *array, const int *stage_row, int width, int offset,
                       int count, int n, RowOf row_of, double *buf)
{
  return is_double ? move_rows<double, move>(array, stage_row, width, offset, count, n, row_of, buf)
                   : move_rows<float, move>(array, stage_row, width, offset, count, n, row_of, buf);
}

}    // namespace

int StudentPair::pack_forward_comm(int n, int *list, double *buf, int /*pbc_flag*/, int * /*pbc*/)
{
  if (recording) {
    recording->insert(recording->end(), list, list + n);
    return n;
  }
  return move_exchange_rows<Move::ROWS_TO_BUFFER>(
      xdouble, xbuf, xrow, xwidth, xoffset, xcount, n,
      [list](int k) {
        return list[k];
      },
      buf);
}

void StudentPair::unpack_forward_comm(int n, int first, double *buf)
{
  if (recording) return;
  move_exchange_rows<Move::BUFFER_TO_ROWS>(
      xdouble, xbuf, xrow, xwidth, xoffset, xcount, n,
      [first](int k) {
        return first + k;
      },
      buf);
}

int StudentPair::pack_reverse_comm(int n, int first, double *buf)
{
  return move_exchange_rows<Move::ROWS_TO_BUFFER>(
      xdouble, xbuf, xrow, xwidth, xoffset, xcount, n,
      [first](int k) {
        return first + k;
      },
      buf);
}

void StudentPair::unpack_reverse_comm(int n, int *list, double *buf)
{
  move_exchange_rows<Move::BUFFER_ADDED_TO_ROWS>(
      xdouble, xbuf, xrow, xwidth, xoffset, xcount, n,
      [list](int k) {
        return list[k];
      },
      buf);
}
