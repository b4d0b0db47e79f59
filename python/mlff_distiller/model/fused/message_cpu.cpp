// The PaiNN message block (blocks.Message) fused for the CPU: one pass over the edges forward, one
// backward, no [E, 3F] array in memory.
//
// The eager block gathers, multiplies and scatters in separate operations, each a pass over [E, 3F]
// arrays; a water box spends most of its time there streaming memory. Here a tile of edges at a
// time gets its filter rows (a small matrix product, recomputed in the backward rather than
// stored), and each edge's terms are made and consumed while its rows are in cache; the
// backward's filter-gradient rows are projected on the filter weights while the tile is in cache.
//
// Operators (schemas in TORCH_LIBRARY below; shapes: N atoms, E edges, F features, K radial
// functions; edge e = (i, j) with i = edge_i[e] receiving and j = edge_j[e] sending; the filter
// of edge e is filt_e = (rbf_e weight^T + bias) fc_e, blocks.LayerFilter):
//   mlff_fused::message_forward(x [N,3F], v [N,3,F], rbf [E,K], fc [E], weight [3F,K], bias [3F],
//                               u [E,3], edge_i [E], edge_j [E], v_is_zero) -> ds [N,F], dv [N,3,F]
//     m_e = x_j * filt_e in three channels (m_s, m_vv, m_vs); ds_i = sum_e m_s,
//     dv_i = sum_e m_vv v_j + m_vs u_e.
//   mlff_fused::message_backward(grad_s [N,F], grad_v [N,3,F], x, v, rbf, fc, weight, bias, u,
//                                edge_i, edge_j, v_is_zero, need_input_grads)
//     -> g_x [N,3F], g_v [N,3,F] (both [0] rows unless need_input_grads), projected [E,K+1], g_u [E,3]
//     the vector-Jacobian product of message_forward as blocks.Message.backward defines it: the
//     filter's gradient leaves projected on [weight | bias].
// Any edge order; float32 and float64; int64 indices. Meta kernels give torch.compile and
// torch.export the output shapes. Several threads each sum into their own copy of the scattered
// outputs (added at the end), so no sum needs an atomic operation.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

// the BLAS that torch links (MKL in the x86 wheels, OpenBLAS elsewhere), through its Fortran names
extern "C" {
void sgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k, const float *alpha,
            const float *a, const int *lda, const float *b, const int *ldb, const float *beta, float *c,
            const int *ldc);
void dgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k, const double *alpha,
            const double *a, const int *lda, const double *b, const int *ldb, const double *beta, double *c,
            const int *ldc);
}

namespace {

// Edges per tile: the tile's filter rows and gradient rows ([tile, 3F] each) stay in the core's cache,
// and the matrix products over a tile are large enough that their call costs little.
constexpr int64_t EDGES_PER_TILE = 256;

struct Sizes {
  int64_t n_atoms, n_edges, F, K;
};

Sizes check_inputs(const at::Tensor &x, const at::Tensor &v, const at::Tensor &rbf, const at::Tensor &fc,
                   const at::Tensor &weight, const at::Tensor &bias, const at::Tensor &u, const at::Tensor &edge_i,
                   const at::Tensor &edge_j)
{
  TORCH_CHECK(x.dim() == 2 && x.size(1) % 3 == 0, "mlff_fused: x must be [N,3F], got ", x.sizes());
  const int64_t n_atoms = x.size(0), F = x.size(1) / 3, n_edges = edge_i.size(0), K = rbf.size(-1);
  TORCH_CHECK(v.sizes() == at::IntArrayRef({n_atoms, 3, F}), "mlff_fused: v must be [N,3,F] = [", n_atoms,
              ",3,", F, "], got ", v.sizes());
  TORCH_CHECK(rbf.sizes() == at::IntArrayRef({n_edges, K}), "mlff_fused: rbf must be [E,K], got ", rbf.sizes());
  TORCH_CHECK(fc.sizes() == at::IntArrayRef({n_edges}), "mlff_fused: fc must be [E], got ", fc.sizes());
  TORCH_CHECK(weight.sizes() == at::IntArrayRef({3 * F, K}), "mlff_fused: weight must be [3F,K], got ",
              weight.sizes());
  TORCH_CHECK(bias.sizes() == at::IntArrayRef({3 * F}), "mlff_fused: bias must be [3F], got ", bias.sizes());
  TORCH_CHECK(u.sizes() == at::IntArrayRef({n_edges, 3}), "mlff_fused: u must be [E,3], got ", u.sizes());
  TORCH_CHECK(edge_j.sizes() == edge_i.sizes() && edge_i.dim() == 1, "mlff_fused: edge_i, edge_j must be [E]");
  TORCH_CHECK(edge_i.scalar_type() == at::kLong && edge_j.scalar_type() == at::kLong,
              "mlff_fused: edge indices must be int64");
  for (const at::Tensor *t : {&v, &rbf, &fc, &weight, &bias, &u})
    TORCH_CHECK(t->scalar_type() == x.scalar_type(), "mlff_fused: all inputs but the indices must share x's dtype");
  return {n_atoms, n_edges, F, K};
}

// The scattered outputs of each thread: the output itself for the first thread, a zeroed copy for
// each other one (added into the output by sum_copies).
std::vector<at::Tensor> per_thread(const at::Tensor &output)
{
  std::vector<at::Tensor> copies{output};
  for (int t = 1; t < at::get_num_threads(); ++t) copies.push_back(at::zeros_like(output));
  return copies;
}

void sum_copies(const std::vector<at::Tensor> &copies)
{
  for (size_t t = 1; t < copies.size(); ++t) copies[0].add_(copies[t]);
}

// body(thread, begin, end) over tiles of edges, the tiles shared out among the threads.
template <typename Body> void for_each_tile(int64_t n_edges, const Body &body)
{
  at::parallel_for(0, n_edges, EDGES_PER_TILE, [&](int64_t first, int64_t last) {
    const int thread = at::get_thread_num();
    for (int64_t begin = first; begin < last; begin += EDGES_PER_TILE)
      body(thread, begin, std::min(begin + EDGES_PER_TILE, last));
  });
}

// Row-major matrix products through torch's BLAS without a tensor or a dispatch per tile (which
// would cost more than a small molecule's whole tile): C [m,n] = A [m,k] B [k,n], B given as B or,
// with b_transposed, as B^T [n,k]. BLAS is column-major, so it computes C^T = B^T A^T.
template <typename T> void matmul(int m, int n, int k, const T *a, const T *b, bool b_transposed, T *c)
{
  const char trans_b = b_transposed ? 'T' : 'N', trans_a = 'N';
  const int ldb = b_transposed ? k : n;
  const T one = 1, zero = 0;
  if constexpr (std::is_same_v<T, float>)
    sgemm_(&trans_b, &trans_a, &n, &m, &k, &one, b, &ldb, a, &k, &zero, c, &n);
  else
    dgemm_(&trans_b, &trans_a, &n, &m, &k, &one, b, &ldb, a, &k, &zero, c, &n);
}

// The filter rows before the cutoff and the bias, rbf_e weight^T, of edges begin..end into `rows`.
template <typename T>
void filter_rows(const T *rbf, const T *weight, int64_t K, int64_t width, int64_t begin, int64_t end, T *rows)
{
  matmul<T>(int(end - begin), int(width), int(K), rbf + begin * K, weight, true, rows);
}

template <typename T> struct Edges {
  const T *x, *v, *rbf, *fc, *weight, *bias, *u;
  const int64_t *edge_i, *edge_j;
  int64_t F, K;
};

template <typename T>
Edges<T> edges_of(const at::Tensor &x, const at::Tensor &v, const at::Tensor &rbf, const at::Tensor &fc,
                  const at::Tensor &weight, const at::Tensor &bias, const at::Tensor &u, const at::Tensor &edge_i,
                  const at::Tensor &edge_j)
{
  return {x.data_ptr<T>(),
          v.data_ptr<T>(),
          rbf.data_ptr<T>(),
          fc.data_ptr<T>(),
          weight.data_ptr<T>(),
          bias.data_ptr<T>(),
          u.data_ptr<T>(),
          edge_i.data_ptr<int64_t>(),
          edge_j.data_ptr<int64_t>(),
          x.size(1) / 3,
          rbf.size(1)};
}

// ds_i += m_s, dv_i += m_vv v_j + m_vs u_e over edges begin..end; `pre` holds their filter rows
// before the bias and the cutoff.
template <typename T, bool V_IS_ZERO>
void forward_edges(const Edges<T> &in, const T *pre, int64_t begin, int64_t end, T *ds, T *dv)
{
  const int64_t F = in.F;
  for (int64_t e = begin; e < end; ++e) {
    const int64_t i = in.edge_i[e], j = in.edge_j[e];
    const T *__restrict xj = in.x + j * 3 * F;
    const T *__restrict pe = pre + (e - begin) * 3 * F;
    const T *__restrict b = in.bias;
    const T *__restrict vj = in.v + j * 3 * F;
    T *__restrict ds_i = ds + i * F;
    T *__restrict dv_i = dv + i * 3 * F;
    const T fc = in.fc[e], u0 = in.u[3 * e], u1 = in.u[3 * e + 1], u2 = in.u[3 * e + 2];
#pragma omp simd
    for (int64_t f = 0; f < F; ++f) {
      ds_i[f] += xj[f] * ((pe[f] + b[f]) * fc);
      const T m_vs = xj[2 * F + f] * ((pe[2 * F + f] + b[2 * F + f]) * fc);
      T d0 = m_vs * u0, d1 = m_vs * u1, d2 = m_vs * u2;
      if (!V_IS_ZERO) {
        const T m_vv = xj[F + f] * ((pe[F + f] + b[F + f]) * fc);
        d0 += m_vv * vj[f];
        d1 += m_vv * vj[F + f];
        d2 += m_vv * vj[2 * F + f];
      }
      dv_i[f] += d0;
      dv_i[F + f] += d1;
      dv_i[2 * F + f] += d2;
    }
  }
}

// The backward over edges begin..end (`pre`: their filter rows before the bias and the cutoff): the filter's
// gradient rows g_m * x_j into `rows`, g_u into its rows, and with INPUT_GRADS the sums into the
// senders j: g_x += g_m * filt, g_v += m_vv g_v_i.
template <typename T, bool V_IS_ZERO, bool INPUT_GRADS>
void backward_edges(const Edges<T> &in, const T *grad_s, const T *grad_v, const T *pre, int64_t begin, int64_t end,
                    T *rows, T *g_u, T *g_x, T *g_v)
{
  const int64_t F = in.F;
  for (int64_t e = begin; e < end; ++e) {
    const int64_t i = in.edge_i[e], j = in.edge_j[e];
    const T *__restrict xj = in.x + j * 3 * F;
    const T *__restrict pe = pre + (e - begin) * 3 * F;
    const T *__restrict b = in.bias;
    const T *__restrict vj = in.v + j * 3 * F;
    const T *__restrict gs_i = grad_s + i * F;
    const T *__restrict gv_i = grad_v + i * 3 * F;
    T *__restrict row = rows + (e - begin) * 3 * F;
    T *__restrict gx_j = INPUT_GRADS ? g_x + j * 3 * F : nullptr;
    T *__restrict gv_j = INPUT_GRADS ? g_v + j * 3 * F : nullptr;
    const T fc = in.fc[e], u0 = in.u[3 * e], u1 = in.u[3 * e + 1], u2 = in.u[3 * e + 2];
    T gu0 = 0, gu1 = 0, gu2 = 0;
#pragma omp simd reduction(+ : gu0, gu1, gu2)
    for (int64_t f = 0; f < F; ++f) {
      const T gv0 = gv_i[f], gv1 = gv_i[F + f], gv2 = gv_i[2 * F + f];
      const T f_s = (pe[f] + b[f]) * fc, f_vv = (pe[F + f] + b[F + f]) * fc,
              f_vs = (pe[2 * F + f] + b[2 * F + f]) * fc;
      const T m_vs = xj[2 * F + f] * f_vs;
      const T g_mvs = gv0 * u0 + gv1 * u1 + gv2 * u2;
      const T g_mvv = V_IS_ZERO ? T(0) : gv0 * vj[f] + gv1 * vj[F + f] + gv2 * vj[2 * F + f];
      gu0 += gv0 * m_vs;
      gu1 += gv1 * m_vs;
      gu2 += gv2 * m_vs;
      row[f] = gs_i[f] * xj[f];
      row[F + f] = g_mvv * xj[F + f];
      row[2 * F + f] = g_mvs * xj[2 * F + f];
      if (INPUT_GRADS) {
        gx_j[f] += gs_i[f] * f_s;
        gx_j[F + f] += g_mvv * f_vv;
        gx_j[2 * F + f] += g_mvs * f_vs;
        if (!V_IS_ZERO) {
          const T m_vv = xj[F + f] * f_vv;
          gv_j[f] += m_vv * gv0;
          gv_j[F + f] += m_vv * gv1;
          gv_j[2 * F + f] += m_vv * gv2;
        }
      }
    }
    g_u[3 * e] = gu0;
    g_u[3 * e + 1] = gu1;
    g_u[3 * e + 2] = gu2;
  }
}

std::tuple<at::Tensor, at::Tensor> message_forward(const at::Tensor &x_in, const at::Tensor &v_in,
                                                   const at::Tensor &rbf_in, const at::Tensor &fc_in,
                                                   const at::Tensor &weight_in, const at::Tensor &bias_in,
                                                   const at::Tensor &u_in, const at::Tensor &edge_i_in,
                                                   const at::Tensor &edge_j_in, bool v_is_zero)
{
  const at::Tensor x = x_in.contiguous(), v = v_in.contiguous(), rbf = rbf_in.contiguous(), fc = fc_in.contiguous(),
                   weight = weight_in.contiguous(), bias = bias_in.contiguous(), u = u_in.contiguous(),
                   edge_i = edge_i_in.contiguous(), edge_j = edge_j_in.contiguous();
  const Sizes n = check_inputs(x, v, rbf, fc, weight, bias, u, edge_i, edge_j);
  at::Tensor ds = at::zeros({n.n_atoms, n.F}, x.options()), dv = at::zeros({n.n_atoms, 3, n.F}, x.options());
  const auto ds_copies = per_thread(ds), dv_copies = per_thread(dv);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mlff_fused::message_forward", [&] {
    const Edges<scalar_t> in = edges_of<scalar_t>(x, v, rbf, fc, weight, bias, u, edge_i, edge_j);
    for_each_tile(n.n_edges, [&](int thread, int64_t begin, int64_t end) {
      thread_local std::vector<scalar_t> pre;
      pre.resize(EDGES_PER_TILE * 3 * n.F);
      filter_rows(in.rbf, in.weight, n.K, 3 * n.F, begin, end, pre.data());
      scalar_t *ds_t = ds_copies[thread].data_ptr<scalar_t>(), *dv_t = dv_copies[thread].data_ptr<scalar_t>();
      if (v_is_zero)
        forward_edges<scalar_t, true>(in, pre.data(), begin, end, ds_t, dv_t);
      else
        forward_edges<scalar_t, false>(in, pre.data(), begin, end, ds_t, dv_t);
    });
  });
  sum_copies(ds_copies);
  sum_copies(dv_copies);
  return {ds, dv};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>
message_backward(const at::Tensor &grad_s_in, const at::Tensor &grad_v_in, const at::Tensor &x_in,
                 const at::Tensor &v_in, const at::Tensor &rbf_in, const at::Tensor &fc_in, const at::Tensor &weight_in,
                 const at::Tensor &bias_in, const at::Tensor &u_in, const at::Tensor &edge_i_in,
                 const at::Tensor &edge_j_in, bool v_is_zero, bool need_input_grads)
{
  const at::Tensor x = x_in.contiguous(), v = v_in.contiguous(), rbf = rbf_in.contiguous(), fc = fc_in.contiguous(),
                   weight = weight_in.contiguous(), bias = bias_in.contiguous(), u = u_in.contiguous(),
                   edge_i = edge_i_in.contiguous(), edge_j = edge_j_in.contiguous(),
                   grad_s = grad_s_in.contiguous(), grad_v = grad_v_in.contiguous();
  const Sizes n = check_inputs(x, v, rbf, fc, weight, bias, u, edge_i, edge_j);
  TORCH_CHECK(grad_s.sizes() == at::IntArrayRef({n.n_atoms, n.F}) && grad_v.sizes() == v.sizes(),
              "mlff_fused: grad_s, grad_v must be shaped like s [N,F] and v [N,3,F]");
  at::Tensor projected = at::empty({n.n_edges, n.K + 1}, x.options());
  at::Tensor g_u = at::empty({n.n_edges, 3}, x.options());
  const int64_t n_summed = need_input_grads ? n.n_atoms : 0;
  at::Tensor g_x = at::zeros({n_summed, 3 * n.F}, x.options()), g_v = at::zeros({n_summed, 3, n.F}, x.options());
  const auto gx_copies = per_thread(g_x), gv_copies = per_thread(g_v);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mlff_fused::message_backward", [&] {
    const Edges<scalar_t> in = edges_of<scalar_t>(x, v, rbf, fc, weight, bias, u, edge_i, edge_j);
    const scalar_t *gs = grad_s.data_ptr<scalar_t>(), *gv = grad_v.data_ptr<scalar_t>();
    scalar_t *gu = g_u.data_ptr<scalar_t>(), *out = projected.data_ptr<scalar_t>();
    // [weight | bias] [3F,K+1]: the filter gradient's rows leave projected on it
    std::vector<scalar_t> projection(3 * n.F * (n.K + 1));
    for (int64_t c = 0; c < 3 * n.F; ++c) {
      std::copy_n(in.weight + c * n.K, n.K, projection.data() + c * (n.K + 1));
      projection[c * (n.K + 1) + n.K] = in.bias[c];
    }
    const auto tiles = [&](auto v_is_zero_c, auto input_grads_c) {
      constexpr bool V_IS_ZERO = decltype(v_is_zero_c)::value, INPUT_GRADS = decltype(input_grads_c)::value;
      for_each_tile(n.n_edges, [&](int thread, int64_t begin, int64_t end) {
        thread_local std::vector<scalar_t> pre, rows;
        pre.resize(EDGES_PER_TILE * 3 * n.F);
        rows.resize(EDGES_PER_TILE * 3 * n.F);
        filter_rows(in.rbf, in.weight, n.K, 3 * n.F, begin, end, pre.data());
        backward_edges<scalar_t, V_IS_ZERO, INPUT_GRADS>(
            in, gs, gv, pre.data(), begin, end, rows.data(), gu,
            INPUT_GRADS ? gx_copies[thread].data_ptr<scalar_t>() : nullptr,
            INPUT_GRADS ? gv_copies[thread].data_ptr<scalar_t>() : nullptr);
        matmul<scalar_t>(int(end - begin), int(n.K + 1), int(3 * n.F), rows.data(), projection.data(), false,
                         out + begin * (n.K + 1));
      });
    };
    using yes = std::true_type;
    using no = std::false_type;
    if (v_is_zero && need_input_grads) tiles(yes{}, yes{});
    else if (v_is_zero) tiles(yes{}, no{});
    else if (need_input_grads) tiles(no{}, yes{});
    else tiles(no{}, no{});
  });
  sum_copies(gx_copies);
  sum_copies(gv_copies);
  return {g_x, g_v, projected, g_u};
}

std::tuple<at::Tensor, at::Tensor> message_forward_meta(const at::Tensor &x, const at::Tensor &v, const at::Tensor &,
                                                        const at::Tensor &, const at::Tensor &, const at::Tensor &,
                                                        const at::Tensor &, const at::Tensor &, const at::Tensor &,
                                                        bool)
{
  const auto n_atoms = x.sym_size(0), F = v.sym_size(2);
  return {at::empty_symint({n_atoms, F}, x.options()), at::empty_symint({n_atoms, 3, F}, x.options())};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>
message_backward_meta(const at::Tensor &, const at::Tensor &, const at::Tensor &x, const at::Tensor &v,
                      const at::Tensor &rbf, const at::Tensor &, const at::Tensor &, const at::Tensor &,
                      const at::Tensor &, const at::Tensor &edge_i, const at::Tensor &, bool, bool need_input_grads)
{
  const c10::SymInt n_summed = need_input_grads ? x.sym_size(0) : c10::SymInt(0);
  const auto F = v.sym_size(2), n_edges = edge_i.sym_size(0);
  return {at::empty_symint({n_summed, 3 * F}, x.options()), at::empty_symint({n_summed, 3, F}, x.options()),
          at::empty_symint({n_edges, rbf.sym_size(1) + 1}, x.options()), at::empty_symint({n_edges, 3}, x.options())};
}

}    // namespace

TORCH_LIBRARY(mlff_fused, m)
{
  m.def("message_forward(Tensor x, Tensor v, Tensor rbf, Tensor fc, Tensor weight, Tensor bias, Tensor u, "
        "Tensor edge_i, Tensor edge_j, bool v_is_zero) -> (Tensor, Tensor)");
  m.def("message_backward(Tensor grad_s, Tensor grad_v, Tensor x, Tensor v, Tensor rbf, Tensor fc, Tensor weight, "
        "Tensor bias, Tensor u, Tensor edge_i, Tensor edge_j, bool v_is_zero, bool need_input_grads) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(mlff_fused, CPU, m)
{
  m.impl("message_forward", &message_forward);
  m.impl("message_backward", &message_backward);
}

TORCH_LIBRARY_IMPL(mlff_fused, Meta, m)
{
  m.impl("message_forward", &message_forward_meta);
  m.impl("message_backward", &message_backward_meta);
}
