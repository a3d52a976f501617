// Mixed-precision autocast with a chosen dtype, which tch does not expose (its
// `tch::autocast` enables CUDA autocast in fp16 only). Mirrors what `torch.autocast`
// does on entry and exit: save the device's state, enable it with the dtype, count the
// nesting; on the outermost exit clear the cast-weight cache and restore the state.
#include <ATen/autocast_mode.h>

namespace {
c10::DeviceType device_type(int cuda) {
    return cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
}
}  // namespace

extern "C" {

// dtype: 0 = bfloat16, 1 = float16. Writes the previous state to prev_enabled/prev_dtype.
void vog_autocast_enter(int cuda, int dtype, int* prev_enabled, int* prev_dtype) {
    auto dev = device_type(cuda);
    *prev_enabled = at::autocast::is_autocast_enabled(dev) ? 1 : 0;
    *prev_dtype = static_cast<int>(at::autocast::get_autocast_dtype(dev));
    at::autocast::set_autocast_enabled(dev, true);
    at::autocast::set_autocast_dtype(dev, dtype == 0 ? at::kBFloat16 : at::kHalf);
    at::autocast::increment_nesting();
}

void vog_autocast_exit(int cuda, int prev_enabled, int prev_dtype) {
    auto dev = device_type(cuda);
    if (at::autocast::decrement_nesting() == 0) {
        at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(dev, prev_enabled != 0);
    at::autocast::set_autocast_dtype(dev, static_cast<at::ScalarType>(prev_dtype));
}

}  // extern "C"
