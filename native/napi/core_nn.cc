// Bindings for the core_nn kernel family (filled in by its issue).
#include "napi_util.h"

namespace qgs::napi {

void register_core_nn(Napi::Env /*env*/, Napi::Object /*exports*/) {}

}  // namespace qgs::napi
