// Bindings for the core_elementwise kernel family (filled in by its issue).
#include "napi_util.h"

namespace qgs::napi {

void register_core_elementwise(Napi::Env /*env*/, Napi::Object /*exports*/) {}

}  // namespace qgs::napi
