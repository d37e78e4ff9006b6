// LayerNorm of one contiguous row (defined in nn.cpp), shared by the kernels that normalise rows
// inside a fused body instead of calling layer_norm_forward on a whole tensor.
#pragma once
#include <cstdint>

#include "qgs/common.h"

namespace qgs::cpu {
// y = (x − mean) · rstd · w + b over n values (w, b may be null: 1, 0), with the mean and variance in
// float64; writes the row's mean and rstd (1 / sqrt(var + eps)) to mean_out / rstd_out.
void ln_row(float* QGS_RESTRICT y, float* mean_out, float* rstd_out, const float* QGS_RESTRICT x,
            const float* QGS_RESTRICT w, const float* QGS_RESTRICT b, int64_t n, float eps);
}  // namespace qgs::cpu
