// Bindings for the pgloss kernel family (filled in by its issue).
#include "napi_util.h"

namespace qgs::napi {

void register_pgloss(Napi::Env /*env*/, Napi::Object /*exports*/) {}

}  // namespace qgs::napi
