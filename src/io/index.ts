// Checkpoint and file I/O helpers.
export { saveSafetensors, loadSafetensors, encodeSafetensors, decodeSafetensors, QGS_FORMAT_VERSION, type TensorRecord, type TensorRecords, type SafetensorsFile, type SafeDType } from './safetensors';
export { writeFileAtomicSync, AtomicWriter } from './atomic';
