// Bindings for the linrec kernel family (filled in by its issue).
#include "napi_util.h"

namespace qgs::napi {

void register_linrec(Napi::Env /*env*/, Napi::Object /*exports*/) {}

}  // namespace qgs::napi
