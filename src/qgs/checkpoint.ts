// QGS checkpoints: a directory with model.safetensors (weights + the JSON config in __metadata__:
// model config, feature scaler, format version). Written atomically (temp file + rename by
// io/safetensors), validated on load (names, shapes, dtypes, version) before any weight changes.
import * as fs from 'fs';
import * as path from 'path';
import { saveSafetensors, loadSafetensors, type TensorRecord } from '../io/safetensors';
import { QgsModel, DEFAULT_MODEL, type QgsConfig } from './model';
import { ITEM_OFFSET } from './dataset';
import type { ScalerState } from './features';
import { logItemTableRows, parseLogVocab, type LogVocab } from './log-data';

export const CHECKPOINT_FILE = 'model.safetensors';
export const CHECKPOINT_KIND = 'qgs-ranker';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointConfig {
  kind: typeof CHECKPOINT_KIND;
  version: number;
  model: QgsConfig;
  scaler: ScalerState;
  /** Free-form provenance: data seed, epochs, metrics. */
  info?: Record<string, unknown>;
  /** How raw item ids, queries and features map to the model (models trained on a log file, not the synthetic ids). */
  vocab?: LogVocab;
}

export function saveCheckpoint(dir: string, model: QgsModel, scaler: ScalerState, info: Record<string, unknown> = {}, vocab?: LogVocab): string {
  fs.mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorRecord> = {};
  for (const [name, p] of model.namedParameters()) tensors[name] = { dtype: 'F32', shape: [...p.shape], data: p.toFloat32Array() };
  // Item side tables travel as tensors; the JSON config keeps only their sizes.
  const side = model.cfg.side;
  tensors['side.category'] = { dtype: 'I32', shape: [side.category.length], data: side.category };
  tensors['side.style'] = { dtype: 'I32', shape: [side.style.length], data: side.style };
  tensors['side.title'] = { dtype: 'I32', shape: [side.title.length / side.maxTitle, side.maxTitle], data: side.title };
  const modelCfg = { ...model.cfg, side: { categories: side.categories, styles: side.styles, maxTitle: side.maxTitle } };
  const config = { kind: CHECKPOINT_KIND, version: CHECKPOINT_VERSION, model: modelCfg, scaler, info, ...(vocab ? { vocab } : {}) };
  const file = path.join(dir, CHECKPOINT_FILE);
  saveSafetensors(file, tensors, config);
  return file;
}

function isConfig(c: unknown): c is CheckpointConfig {
  const o = c as Partial<CheckpointConfig> | null;
  return o !== null && typeof o === 'object' && o.kind === CHECKPOINT_KIND && typeof o.version === 'number' && typeof o.model === 'object' && typeof o.scaler === 'object';
}

/** Loads a checkpoint directory (or a .safetensors file) into a fresh model in eval mode. */
export function loadCheckpoint(dirOrFile: string): { model: QgsModel; scaler: ScalerState; config: CheckpointConfig } {
  const file = dirOrFile.endsWith('.safetensors') ? dirOrFile : path.join(dirOrFile, CHECKPOINT_FILE);
  if (!fs.existsSync(file)) throw new Error(`loadCheckpoint: ${file} does not exist`);
  const st = loadSafetensors(file);
  if (!isConfig(st.config)) throw new Error(`loadCheckpoint: ${file} is not a ${CHECKPOINT_KIND} checkpoint (config missing or of another kind)`);
  if (st.config.version > CHECKPOINT_VERSION) {
    throw new Error(`loadCheckpoint: ${file} has version ${st.config.version}; this qgs-engine reads up to ${CHECKPOINT_VERSION}`);
  }
  const sideTensor = (name: string): Int32Array => {
    const t = st.tensors[name];
    if (t === undefined || t.dtype !== 'I32') throw new Error(`loadCheckpoint: ${file}: missing I32 tensor ${name}`);
    return t.data;
  };
  const sideCfg = st.config.model.side as unknown as { categories: number; styles: number; maxTitle: number };
  const cfg: QgsConfig = {
    // Fields added after a checkpoint was written (the HFG head's shape) take the defaults it was trained with.
    ...DEFAULT_MODEL,
    ...st.config.model,
    side: { ...sideCfg, category: sideTensor('side.category'), style: sideTensor('side.style'), title: sideTensor('side.title') },
  };
  // Checked before any weight is allocated: a log-trained model's item table is its vocabulary plus
  // the unseen-item row and the no-item token.
  const vocab = st.config.vocab === undefined ? undefined : parseLogVocab(st.config.vocab, `loadCheckpoint: ${file}: vocab`);
  if (vocab !== undefined && logItemTableRows(vocab) !== cfg.itemVocab) {
    throw new Error(`loadCheckpoint: ${file}: vocab has ${vocab.items.length} items but the model's item table has ${cfg.itemVocab} rows (expected items + ${1 + ITEM_OFFSET})`);
  }
  const model = new QgsModel(cfg);
  const params = model.namedParameters();
  const problems: string[] = [];
  for (const [name, p] of params) {
    const t = st.tensors[name];
    if (t === undefined) problems.push(`missing tensor ${name}`);
    else if (t.dtype !== 'F32') problems.push(`${name}: dtype ${t.dtype}, expected F32`);
    else if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) problems.push(`${name}: shape [${t.shape.join(', ')}], expected [${p.shape.join(', ')}]`);
  }
  const known = new Set([...params.map(([n]) => n), 'side.category', 'side.style', 'side.title']);
  for (const n of Object.keys(st.tensors)) if (!known.has(n)) problems.push(`unexpected tensor ${n}`);
  if (problems.length > 0) {
    model.dispose();
    throw new Error(`loadCheckpoint: ${file}: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`);
  }
  for (const [name, p] of params) p.storage.copyFromHost(st.tensors[name].data);
  model.eval();
  return { model, scaler: st.config.scaler, config: { ...st.config, model: cfg, vocab } };
}
