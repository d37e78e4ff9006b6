// Addon entry point: registers each kernel family's bindings.
#include "napi_util.h"

static Napi::Object InitQgs(Napi::Env env, Napi::Object exports) {
  using namespace qgs::napi;
  register_storage(env, exports);
  register_core_elementwise(env, exports);
  register_core_nn(env, exports);
  register_linrec(env, exports);
  register_hfg(env, exports);
  register_pgloss(env, exports);
  return exports;
}

NODE_API_MODULE(qgs, InitQgs)
