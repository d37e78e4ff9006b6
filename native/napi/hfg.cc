// Bindings for the hfg kernel family (filled in by its issue).
#include "napi_util.h"

namespace qgs::napi {

void register_hfg(Napi::Env /*env*/, Napi::Object /*exports*/) {}

}  // namespace qgs::napi
