// The GRU recurrence of marl_augment.algos.agent_stack, fused for the CPU: per step one batched
// product (ATen) and one pass over the gates, instead of a dozen small ATen operators.
// Built on first use by torch.utils.cpp_extension (marl_augment.algos.kernels); where it cannot
// be, agent_stack runs the networks through nn.GRU instead.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <cmath>
#include <vector>

namespace {

inline float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }
inline float tanh_(float v) { return 1.0f - 2.0f / (std::exp(2.0f * v) + 1.0f); }

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous(),
              "recurrence: ", name, " must be a contiguous float32 CPU tensor");
}

// gi (S, T, R, 3H): input-side gate pre-activations, time-major; w_hh_t (S, H, 3H); b_hh (S, 3H);
// the first g networks get what their backward needs. Returns h (S, T, R, H), and for those g:
// m (G, T, R, 3, H) = [C, B, D], a (G, T, R, H) = A, z (G, T, R, H), with
// A = (1 − z)(1 − n²), B = (h_{t−1} − n) z (1 − z), C = A (W_hn h + b_hn) r (1 − r), D = A r:
// ∂L/∂(W_h h + b_h) = dh ⊙ [C, B, D] and ∂L/∂(W_i a + b_i) = dh ⊙ [C, B, A].
std::vector<torch::Tensor> forward(torch::Tensor gi, torch::Tensor w_hh_t, torch::Tensor b_hh, int64_t g) {
  check(gi, "gi");
  auto b_c = b_hh.contiguous();
  check(b_c, "b_hh");
  const int64_t S = gi.size(0), T = gi.size(1), R = gi.size(2), H3 = gi.size(3), H = H3 / 3;
  auto opts = gi.options();
  auto h_all = torch::empty({S, T, R, H}, opts);
  auto m_all = torch::empty({g, T, R, 3, H}, opts);
  auto a_all = torch::empty({g, T, R, H}, opts);
  auto z_all = torch::empty({g, T, R, H}, opts);
  auto h0 = torch::zeros({S, R, H}, opts);
  auto gh = torch::empty({S, R, H3}, opts);
  const float *gi_p = gi.data_ptr<float>(), *gh_p = gh.data_ptr<float>(), *h0_p = h0.data_ptr<float>();
  const float* b_p = b_c.data_ptr<float>();
  float *h_p = h_all.data_ptr<float>(), *m_p = m_all.data_ptr<float>(), *a_p = a_all.data_ptr<float>(),
        *z_p = z_all.data_ptr<float>();
  for (int64_t t = 0; t < T; ++t) {
    at::bmm_out(gh, t == 0 ? h0 : h_all.select(1, t - 1), w_hh_t);  // b_hh added below
    // rows of all networks, split between threads (each row's gates are independent)
    at::parallel_for(0, S * R, 32, [&](int64_t begin, int64_t end) {
      for (int64_t sr = begin; sr < end; ++sr) {
        const int64_t s = sr / R, row = sr % R;
        const int64_t at = (s * T + t) * R + row;  // row index in the (S, T, R, ·) tensors
        const float* xr = gi_p + at * H3;
        const float* gr = gh_p + sr * H3;
        const float* bh = b_p + s * H3;
        const float* hr = t == 0 ? h0_p + sr * H : h_p + (at - R) * H;
        float* hor = h_p + at * H;
        if (s < g) {
          float* mr = m_p + at * 3 * H;
          float* ar = a_p + at * H;
          float* zr = z_p + at * H;
#pragma omp simd
          for (int64_t j = 0; j < H; ++j) {
            const float r = sigmoid(xr[j] + gr[j] + bh[j]);
            const float z = sigmoid(xr[H + j] + gr[H + j] + bh[H + j]);
            const float ghn = gr[2 * H + j] + bh[2 * H + j];
            const float n = tanh_(xr[2 * H + j] + r * ghn);
            const float a = (1.0f - z) * (1.0f - n * n);
            mr[j] = a * ghn * r * (1.0f - r);
            mr[H + j] = (hr[j] - n) * z * (1.0f - z);
            mr[2 * H + j] = a * r;
            ar[j] = a;
            zr[j] = z;
            hor[j] = n + z * (hr[j] - n);
          }
        } else {
#pragma omp simd
          for (int64_t j = 0; j < H; ++j) {
            const float r = sigmoid(xr[j] + gr[j] + bh[j]);
            const float z = sigmoid(xr[H + j] + gr[H + j] + bh[H + j]);
            const float n = tanh_(xr[2 * H + j] + r * (gr[2 * H + j] + bh[2 * H + j]));
            hor[j] = n + z * (hr[j] - n);
          }
        }
      }
    });
  }
  return {h_all, m_all, a_all, z_all};
}

// dh_out (G, T, R, H): ∂L/∂h_t through the output layer; m, a, z from forward; w_hh (G, 3H, H).
// Returns ∂L/∂(W_h h_{t−1} + b_h) and ∂L/∂(W_i a_t + b_i), each (G, T, R, 3H).
std::vector<torch::Tensor> backward(torch::Tensor dh_out, torch::Tensor m, torch::Tensor a, torch::Tensor z,
                                    torch::Tensor w_hh) {
  check(dh_out, "dh_out"), check(m, "m"), check(a, "a"), check(z, "z");
  const int64_t G = dh_out.size(0), T = dh_out.size(1), R = dh_out.size(2), H = dh_out.size(3);
  auto opts = dh_out.options();
  auto d_gh = torch::empty({G, T, R, 3 * H}, opts);
  auto d_gi = torch::empty({G, T, R, 3 * H}, opts);
  auto carry = torch::zeros({G, R, H}, opts);  // ∂L/∂h_t through h_{t+1}
  const float *d_out_p = dh_out.data_ptr<float>(), *m_p = m.data_ptr<float>(), *a_p = a.data_ptr<float>(),
              *z_p = z.data_ptr<float>();
  float *c_p = carry.data_ptr<float>(), *dgh_p = d_gh.data_ptr<float>(), *dgi_p = d_gi.data_ptr<float>();
  for (int64_t t = T - 1; t >= 0; --t) {
    at::parallel_for(0, G * R, 32, [&](int64_t begin, int64_t end) {
      for (int64_t gr = begin; gr < end; ++gr) {
        const int64_t g = gr / R, row = gr % R;
        const int64_t at = (g * T + t) * R + row;
        const float *d_out = d_out_p + at * H, *mr = m_p + at * 3 * H, *ar = a_p + at * H, *zr = z_p + at * H;
        float *c = c_p + gr * H, *dh_h = dgh_p + at * 3 * H, *dh_i = dgi_p + at * 3 * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const float v = d_out[j] + c[j];
          dh_h[j] = dh_i[j] = v * mr[j];
          dh_h[H + j] = dh_i[H + j] = v * mr[H + j];
          dh_h[2 * H + j] = v * mr[2 * H + j];
          dh_i[2 * H + j] = v * ar[j];
          c[j] = v * zr[j];
        }
      }
    });
    if (t > 0) carry.baddbmm_(d_gh.select(1, t), w_hh);
  }
  return {d_gh, d_gi};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "fused GRU recurrence, forward");
  m.def("backward", &backward, "fused GRU recurrence, backward");
}
