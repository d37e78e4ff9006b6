// `--set key=value` for the CLI's training commands: a model hyper-parameter (one of QgsConfig's
// scalar fields) changed without editing code, so an ablation is one command anyone can rerun —
// e.g. `qgs study --models qgs --set hfgHeads=4` against the committed study. The model variant
// (variant, encoder, head) stays with --model / --models and the seed with --seed / --model-seeds,
// so each setting has one way in.
import { DEFAULT_MODEL, type QgsConfig } from './model';

/** The QgsConfig fields --set may change, with what each accepts. */
const SETTABLE = {
  dim: { integer: true, min: 1 },
  layers: { integer: true, min: 1 },
  heads: { integer: true, min: 1 },
  dk: { integer: true, min: 1 },
  dv: { integer: true, min: 1 },
  dropout: { min: 0, below: 1 },
  decayInit: { above: 0, below: 1 },
  nceWeight: { min: 0 },
  temperature: { above: 0 },
  hfgHeads: { integer: true, min: 1 },
  hfgLayers: { integer: true, min: 1 },
  hfgFfnMult: { integer: true, min: 1 },
  hfgPooling: { choices: ['context', 'mean', 'attention'] },
} as const;

type SettableKey = keyof typeof SETTABLE;

/** The keys --set accepts, in help and error order. */
export const SETTABLE_KEYS = Object.keys(SETTABLE) as readonly SettableKey[];
export type ModelOverrides = Partial<Pick<QgsConfig, SettableKey>>;

interface Rule {
  integer?: boolean;
  min?: number;
  above?: number;
  below?: number;
  choices?: readonly string[];
}

function isSettable(key: string): key is SettableKey {
  return Object.prototype.hasOwnProperty.call(SETTABLE, key);
}

/**
 * Parses `key=value` settings into config overrides; errors name `where` (the option), the setting
 * and what it accepts. A key given twice is an error rather than last-one-wins, so a typo in a long
 * command line cannot silently drop a setting.
 */
export function parseModelOverrides(settings: readonly string[], where = '--set'): ModelOverrides {
  const out: Record<string, number | string> = {};
  for (const s of settings) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new Error(`${where}: expected key=value, got '${s}'`);
    const key = s.slice(0, eq).trim();
    const raw = s.slice(eq + 1).trim();
    if (!isSettable(key)) {
      const hint = key in DEFAULT_MODEL ? ' (variant, encoder and head come from --model(s), seed from --seed / --model-seeds)' : '';
      throw new Error(`${where}: unknown setting '${key}'${hint}; expected one of ${SETTABLE_KEYS.join(', ')}`);
    }
    if (key in out) throw new Error(`${where}: '${key}' is set twice`);
    const rule: Rule = SETTABLE[key];
    if (rule.choices !== undefined) {
      if (!rule.choices.includes(raw)) throw new Error(`${where}: ${key}: expected one of ${rule.choices.join(', ')}, got '${raw}'`);
      out[key] = raw;
      continue;
    }
    const v = raw === '' ? Number.NaN : Number(raw);
    const bounds = [
      rule.min !== undefined ? `>= ${rule.min}` : '',
      rule.above !== undefined ? `> ${rule.above}` : '',
      rule.below !== undefined ? `< ${rule.below}` : '',
    ].filter(Boolean);
    const want = `${rule.integer ? 'an integer' : 'a number'} ${bounds.join(' and ')}`;
    const ok =
      Number.isFinite(v) &&
      (!rule.integer || Number.isInteger(v)) &&
      (rule.min === undefined || v >= rule.min) &&
      (rule.above === undefined || v > rule.above) &&
      (rule.below === undefined || v < rule.below);
    if (!ok) throw new Error(`${where}: ${key}: expected ${want}, got '${raw}'`);
    out[key] = v;
  }
  return out as ModelOverrides;
}

/** Commander's collector for a repeatable option: every occurrence appended. */
export function collectSetting(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
