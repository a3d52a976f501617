// libtorch's multi-tensor ("foreach") arithmetic, which tch does not expose: one call updates
// every tensor of a list, as torch.optim.SGD(foreach=True) does, instead of one kernel
// launch per parameter tensor (about 250 a step for ResNet-18). On a CPU libtorch runs the
// same per-tensor operations, so results equal the per-tensor loop's.
//
// Each list is n pointers to at::Tensor (tch's C_tensor); the first list is updated in
// place.
#include <ATen/ATen.h>

#include <vector>

namespace {
std::vector<at::Tensor> list(void** tensors, int n) {
    std::vector<at::Tensor> out;
    out.reserve(n);
    for (int i = 0; i < n; ++i) {
        out.push_back(*static_cast<at::Tensor*>(tensors[i]));
    }
    return out;
}
}  // namespace

extern "C" {

// a[i] += alpha * b[i] for every i.
void vog_foreach_add_(void** a, void** b, int n, double alpha) {
    at::_foreach_add_(list(a, n), list(b, n), alpha);
}

// a[i] *= s for every i.
void vog_foreach_mul_(void** a, int n, double s) {
    at::_foreach_mul_(list(a, n), s);
}

}  // extern "C"
