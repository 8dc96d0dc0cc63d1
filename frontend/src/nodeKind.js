const FLOW_TYPES = new Set(['delay', 'wait_for_event', 'condition', 'split', 'goal', 'exit']);
const KINDS = new Set(['trigger', 'flow', 'action']);

// An explicit config.kind wins, so new node types can opt in without a frontend change.
export function nodeKind(type, config) {
  if (KINDS.has(config?.kind)) return config.kind;
  const name = String(type ?? '');
  if (name.startsWith('trigger') || name.endsWith('_trigger')) return 'trigger';
  if (FLOW_TYPES.has(name)) return 'flow';
  return 'action';
}
