// nn.ConcatFeatureMLP: the ablation baseline of HFG-Attention (DESIGN.md §5, "features concatenated
// into an MLP instead of HFG-Attention"). Same inputs and output as nn.HFGAttention, so the two are
// interchangeable in a ranking model: context [N, D], item [N, D], group tokens [N, G, D] and group
// mask [N, G] are concatenated (missing groups zeroed, the mask appended so the MLP can tell a
// missing group from a zero token) and mapped to [N, D] by an MLP — no interaction structure.
import { Tensor, tensor, type Device } from '../tensor';
import { concat, reshape } from '../ops/movement';
import { mul } from '../ops/elementwise';
import { checkNumber, checkTensor, sameDevice } from '../ops/validate';
import { Module } from './module';
import { MLP, type Activation } from './mlp';

export interface ConcatFeatureMLPOptions {
  dim: number;
  numGroups: number;
  /** Hidden layer widths (default [2·D]). */
  hidden?: readonly number[];
  activation?: Activation;
  seed?: number;
  device?: Device;
}

const OP = 'ConcatFeatureMLP';

export class ConcatFeatureMLP extends Module {
  readonly dim: number;
  readonly numGroups: number;
  readonly mlp: MLP;

  constructor(opts: ConcatFeatureMLPOptions) {
    super();
    if (typeof opts !== 'object' || opts === null) throw new TypeError(`${OP}: opts: expected an object with dim and numGroups, got ${opts === null ? 'null' : typeof opts}`);
    const D = (this.dim = checkNumber(OP, 'dim', opts.dim, { integer: true, min: 1 }));
    const G = (this.numGroups = checkNumber(OP, 'numGroups', opts.numGroups, { integer: true, min: 0 }));
    const hidden = opts.hidden ?? [2 * D];
    this.mlp = this.registerModule('mlp', new MLP((G + 2) * D + G, hidden, D, { activation: opts.activation ?? 'gelu', seed: opts.seed, device: opts.device }));
  }

  /** Same contract as HFGAttention.forward: → [N, D]. */
  forward(context: Tensor, item: Tensor, groupTokens: Tensor, groupMask?: Tensor | null): Tensor {
    const D = this.dim;
    const G = this.numGroups;
    checkTensor(OP, 'context', context, { dtype: 'f32', rank: 2 });
    const N = context.shape[0];
    checkTensor(OP, 'context', context, { shape: [N, D] });
    checkTensor(OP, 'item', item, { dtype: 'f32', shape: [N, D] });
    checkTensor(OP, 'groupTokens', groupTokens, { dtype: 'f32', shape: [N, G, D] });
    if (groupMask != null) checkTensor(OP, 'groupMask', groupMask, { dtype: 'f32', shape: [N, G] });
    sameDevice(OP, { context, item, groupTokens, groupMask });
    const parts = [context, item];
    if (G > 0) {
      const tok = groupMask != null ? mul(groupTokens, reshape(groupMask, [N, G, 1])) : groupTokens;
      parts.push(reshape(tok, [N, G * D]));
      parts.push(groupMask ?? tensor(new Float32Array(N * G).fill(1), [N, G], { device: context.device }));
    }
    return this.mlp.forward(concat(parts, 1));
  }
}
