// CLPO curriculum pieces (research/papers.md §5.1, §7.4; thresholds and scales from the CLPO code,
// github.com/csuking/CLPO, v1): online difficulty from the group accuracy and the difficulty-aware
// per-sequence KL scale (a looser anchor for hard prompts). The rewriting of hard / medium prompts
// is the trainer's job (DESIGN.md §11).
import { checkFiniteArray, resolveGroups, type Grouping } from './advantages';

export type Difficulty = 'hard' | 'medium' | 'easy';

export interface ClpoThresholds {
  /** acc <= tauHard is hard (acc = 0 included). Code default 0.3 (paper text 0.25). */
  tauHard?: number;
  /** tauHard < acc <= tauMedium is medium, above is easy. Code default 0.7 (paper text 0.75). */
  tauMedium?: number;
}

function thresholds(op: string, t: ClpoThresholds): [number, number] {
  const h = t.tauHard ?? 0.3;
  const m = t.tauMedium ?? 0.7;
  if (typeof h !== 'number' || typeof m !== 'number' || !(h >= 0 && h <= m && m <= 1)) {
    throw new RangeError(`${op}: thresholds: expected 0 <= tauHard <= tauMedium <= 1, got tauHard=${String(h)}, tauMedium=${String(m)}`);
  }
  return [h, m];
}

/** Difficulty of one prompt from its accuracy (pass rate) over G rollouts. */
export function clpoDifficulty(acc: number, t: ClpoThresholds = {}): Difficulty {
  const [h, m] = thresholds('clpoDifficulty', t);
  if (typeof acc !== 'number' || !(acc >= 0 && acc <= 1)) throw new RangeError(`clpoDifficulty: acc: expected a number in [0, 1], got ${String(acc)}`);
  return acc <= h ? 'hard' : acc <= m ? 'medium' : 'easy';
}

export interface ClpoGroup {
  /** Response indices of the group. */
  members: number[];
  acc: number;
  difficulty: Difficulty;
}

/** Per-group accuracy (mean of correct > 0) and difficulty. */
export function clpoClassify(correct: ArrayLike<number>, grouping: Grouping, t: ClpoThresholds = {}): ClpoGroup[] {
  const op = 'clpoClassify';
  const c = checkFiniteArray(op, 'correct', correct);
  thresholds(op, t);
  const { members } = resolveGroups(op, c.length, grouping);
  return members.map((g) => {
    const acc = g.filter((i) => c[i] > 0).length / g.length;
    return { members: g, acc, difficulty: clpoDifficulty(acc, t) };
  });
}

export interface ClpoKlScaleOptions {
  /** KL scale of hard samples (code: kl_loss_coef_hard_scale = 0.5). */
  hardScale?: number;
  /** KL scale of the others (code: nonhard_scale = 1.0). */
  otherScale?: number;
}

/** Per-response KL scale s_i for the `klScale` option of the clipped loss. */
export function clpoKlScale(difficulty: readonly Difficulty[], opts: ClpoKlScaleOptions = {}): Float32Array {
  const hard = opts.hardScale ?? 0.5;
  const other = opts.otherScale ?? 1;
  for (const [n, v] of [['hardScale', hard], ['otherScale', other]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`clpoKlScale: ${n}: expected a finite number >= 0, got ${String(v)}`);
  }
  return Float32Array.from(difficulty, (d, i) => {
    if (d !== 'hard' && d !== 'medium' && d !== 'easy') throw new TypeError(`clpoKlScale: difficulty[${i}]: expected 'hard', 'medium' or 'easy', got ${String(d)}`);
    return d === 'hard' ? hard : other;
  });
}

/** Per-response difficulty from per-response correctness (each response gets its group's label). */
export function clpoResponseDifficulty(correct: ArrayLike<number>, grouping: Grouping, t: ClpoThresholds = {}): Difficulty[] {
  const groups = clpoClassify(correct, grouping, t);
  const out = new Array<Difficulty>(correct.length);
  for (const g of groups) for (const i of g.members) out[i] = g.difficulty;
  return out;
}
