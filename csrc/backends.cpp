// libtorch's global backend switches that tch does not expose, as `torch.backends` sets
// them in Python: deterministic algorithms (torch.use_deterministic_algorithms,
// cudnn.deterministic, cudnn.benchmark) and TF32 for fp32 work on CUDA
// (cudnn.allow_tf32, cuda.matmul.allow_tf32).
#include <ATen/Context.h>

extern "C" {

// on: deterministic algorithms only, cuDNN's benchmark mode off; operations without a
// deterministic implementation warn (warn_only) instead of failing the run.
void vog_set_deterministic(int on) {
    auto& ctx = at::globalContext();
    ctx.setDeterministicCuDNN(on != 0);
    ctx.setBenchmarkCuDNN(on == 0);
    ctx.setDeterministicAlgorithms(on != 0, /*warn_only=*/true);
}

// on: fp32 convolutions and matrix products on CUDA may use TF32 tensor cores (10-bit
// mantissa); off: they compute in fp32.
void vog_set_tf32(int on) {
    auto& ctx = at::globalContext();
    ctx.setAllowTF32CuDNN(on != 0);
    ctx.setAllowTF32CuBLAS(on != 0);
}

// 1 where fp32 convolutions on CUDA may use TF32.
int vog_tf32_convolutions() {
    return at::globalContext().allowTF32CuDNN() ? 1 : 0;
}

}  // extern "C"
