// The editor's graph logic, free of React: handles of a node, which connections are allowed, the
// conversion between the server's graph and the canvas's nodes and edges, summaries, clipboard and
// the mapping of validation problems onto nodes and fields.

import { graphToFlow, flowToGraph } from '../graph.js';

export const DEFAULT_HANDLE = 'default';
export const STEP = 'step';

// The node's output handles as the server derives them (journeys/nodes): the palette's
// `handles_when` rules first (config values that replace the handles, e.g. a goal that ends the
// journey has none), then a node type with dynamic handles takes its branches' ids, followed by its
// static handles (a condition's "else").
export function outputHandles(nodeType, config) {
  if (!nodeType) return [DEFAULT_HANDLE];
  // An unset field has its schema default, as the server's config model gives it.
  const valueOf = (field) => config?.[field] ?? nodeType.config_schema?.properties?.[field]?.default ?? null;
  const rule = (nodeType.handles_when ?? []).find(({ field, equals }) => valueOf(field) === equals);
  if (rule) return [...rule.handles];
  const handles = [...(nodeType.handles ?? [])];
  if (!nodeType.dynamic_handles) return handles;
  const branchIds = (Array.isArray(config?.branches) ? config.branches : [])
    .map((branch) => branch?.id)
    .filter((id) => typeof id === 'string' && id !== '');
  return [...new Set([...branchIds, ...handles])];
}

export function edgeId(source, sourceHandle, target) {
  return `${source}-${sourceHandle ?? DEFAULT_HANDLE}-${target}`;
}

// Why a connection is refused (null: it is allowed). Checked while the marketer drags, so the
// canvas shows the target as invalid before the mouse is released.
export function connectionProblem(connection, nodes, edges, typesByKey) {
  const { source, target } = connection;
  const sourceHandle = connection.sourceHandle ?? DEFAULT_HANDLE;
  if (!source || !target) return 'incomplete';
  if (source === target) return 'self';
  const targetNode = nodes.find((node) => node.id === target);
  const sourceNode = nodes.find((node) => node.id === source);
  if (!targetNode || !sourceNode) return 'missing';
  if (typesByKey[targetNode.data.nodeType]?.kind === 'trigger') return 'into-trigger';
  const handles = outputHandles(typesByKey[sourceNode.data.nodeType], sourceNode.data.config);
  if (!handles.includes(sourceHandle)) return 'no-handle';
  const taken = edges.some(
    (edge) => edge.source === source && (edge.sourceHandle ?? DEFAULT_HANDLE) === sourceHandle,
  );
  if (taken) return 'handle-taken';
  return null;
}

export function makeEdge(source, sourceHandle, target) {
  const handle = sourceHandle ?? DEFAULT_HANDLE;
  return { id: edgeId(source, handle, target), source, sourceHandle: handle, target };
}

// Server graph -> canvas. Edges without a handle leave by the default handle, as the server reads them.
export function graphToEditor(graph) {
  const { nodes, edges } = graphToFlow(graph);
  return {
    nodes: nodes.map((node) => ({
      id: node.id,
      type: STEP,
      position: node.position,
      data: { nodeType: node.data.nodeType, config: structuredClone(node.data.config) },
    })),
    edges: edges.map((edge) => ({ ...makeEdge(edge.source, edge.sourceHandle, edge.target), id: edge.id })),
  };
}

function cleanConfig(config) {
  // Empty optional values are left out, so the server applies its defaults.
  const clean = {};
  for (const [key, value] of Object.entries(config ?? {})) {
    if (value === undefined) continue;
    if (key === 'ends' && Array.isArray(value) && value.length === 0) continue;
    if (key === 'label' && value === '') continue;
    clean[key] = value;
  }
  return clean;
}

// Canvas -> server graph; positions rounded (they are pixels) and ends dropped for handles that
// are connected or no longer exist.
export function editorToGraph(nodes, edges, typesByKey = {}) {
  const prepared = nodes.map((node) => {
    const config = { ...node.data.config };
    if (Array.isArray(config.ends) && typesByKey[node.data.nodeType]) {
      const handles = outputHandles(typesByKey[node.data.nodeType], config);
      const connected = new Set(edges.filter((e) => e.source === node.id).map((e) => e.sourceHandle));
      config.ends = config.ends.filter((handle) => handles.includes(handle) && !connected.has(handle));
    }
    return {
      ...node,
      position: { x: Math.round(node.position.x), y: Math.round(node.position.y) },
      data: { ...node.data, config: cleanConfig(config) },
    };
  });
  return flowToGraph(prepared, edges);
}

export function newNodeId(type, existingIds) {
  const stem = String(type).replace(/_trigger$/, '').replace(/[^a-z0-9]+/gi, '_') || 'step';
  let number = 1;
  while (existingIds.has(`${stem}_${number}`)) number += 1;
  return `${stem}_${number}`;
}

// A new node's config: the schema's defaults, and for node types whose handles are branches, a
// first branch (a condition needs one, a random split two adding up to 100).
export function initialConfig(nodeType) {
  const config = {};
  const properties = nodeType?.config_schema?.properties ?? {};
  for (const [name, property] of Object.entries(properties)) {
    if (name === 'label' || name === 'ends') continue;
    if (property.default !== undefined && property.default !== null) config[name] = property.default;
  }
  if (nodeType?.type === 'condition') config.branches = [{ id: 'yes', label: '', rule: emptyRule() }];
  if (nodeType?.type === 'random_split') {
    config.branches = [
      { id: 'a', label: '', percent: 50 },
      { id: 'b', label: '', percent: 50 },
    ];
  }
  return config;
}

// The selected nodes and the edges between them, as the clipboard keeps them.
export function copySelection(nodes, edges) {
  const chosen = nodes.filter((node) => node.selected);
  const ids = new Set(chosen.map((node) => node.id));
  return {
    nodes: chosen.map(({ id, position, data }) => ({ id, position, data })),
    edges: edges.filter((e) => ids.has(e.source) && ids.has(e.target)).map(({ source, sourceHandle, target }) => ({
      source,
      sourceHandle,
      target,
    })),
  };
}

// Copies of the clipboard's nodes with fresh ids, moved by `offset`, the copies selected.
export function pasteClipboard(clipboard, existingIds, offset = { x: 40, y: 40 }) {
  const taken = new Set(existingIds);
  const renamed = new Map();
  const nodes = clipboard.nodes.map((node) => {
    const id = newNodeId(node.data.nodeType, taken);
    taken.add(id);
    renamed.set(node.id, id);
    return {
      id,
      type: STEP,
      position: { x: node.position.x + offset.x, y: node.position.y + offset.y },
      data: structuredClone(node.data),
      selected: true,
    };
  });
  const edges = clipboard.edges.map((edge) =>
    makeEdge(renamed.get(edge.source), edge.sourceHandle, renamed.get(edge.target)),
  );
  return { nodes, edges };
}

// Validation problems ({node, field, message}) by node id; problems of the whole graph under null.
export function problemsByNode(problems) {
  const byNode = new Map();
  for (const problem of problems ?? []) {
    const key = problem.node ?? null;
    if (!byNode.has(key)) byNode.set(key, []);
    byNode.get(key).push(problem);
  }
  return byNode;
}

// A rule with no condition yet, as the rule builder starts one: "all of" nothing.
export function emptyRule() {
  return { and: [] };
}

function configField(problem) {
  return String(problem.field ?? '').startsWith('config.') ? problem.field.slice(7) : '';
}

// A problem as one line; a problem inside a rule names the condition's JSON path, for whoever
// reads the rule as JSON.
export function problemText(problem) {
  return problem.path ? `${problem.path}: ${problem.message}` : problem.message;
}

// A node's problems by config field path ("branches.0.rule"); those not about one field under "".
export function problemsByField(problems) {
  const byField = {};
  for (const problem of problems ?? []) {
    (byField[configField(problem)] ??= []).push(problemText(problem));
  }
  return byField;
}

// The problems inside the rule at a config field ("branches.0.rule"), each {path, message} with
// the JSON path of its condition, as the rule builder shows them beside the conditions.
export function ruleProblems(problems, field) {
  return (problems ?? [])
    .filter((problem) => problem.path && configField(problem) === field)
    .map(({ path, message }) => ({ path, message }));
}

function duration(seconds, strings) {
  if (typeof seconds !== 'number') return '';
  const say = (template, count) => String(template ?? '{count}').replace('{count}', String(count));
  if (seconds % 86400 === 0) return say(strings.daysCount, seconds / 86400);
  if (seconds % 3600 === 0) return say(strings.hoursCount, seconds / 3600);
  if (seconds % 60 === 0) return say(strings.minutesCount, seconds / 60);
  return say(strings.secondsCount, seconds);
}

// One line telling what the node is set to do.
export function nodeSummary(nodeTypeKey, config, { strings = {}, names = {} } = {}) {
  const c = config ?? {};
  const name = (kind, key) => names[kind]?.[key] ?? key;
  switch (nodeTypeKey) {
    case 'event_trigger':
    case 'wait_for_event': {
      const parts = [c.event];
      if (nodeTypeKey === 'wait_for_event' && c.timeout_seconds) parts.push(`≤ ${duration(c.timeout_seconds, strings)}`);
      if (c.where?.length) parts.push(`+${c.where.length}`);
      return parts.filter(Boolean).join(' · ');
    }
    case 'segment_trigger':
      return c.segment ? `${name('segments', c.segment)}${c.on === 'exited' ? ' ↩' : ''}` : '';
    case 'tag_added_trigger':
    case 'add_tag':
    case 'remove_tag':
      return c.tag ? name('tags', c.tag) : '';
    case 'delay':
      if (c.seconds) return duration(c.seconds, strings);
      return c.until_time ? `→ ${c.until_time}` : '';
    case 'send':
      return [c.account != null ? name('accounts', String(c.account)) : '', c.template ? name('templates', c.template) : '']
        .filter(Boolean)
        .join(' · ');
    case 'condition':
    case 'random_split':
      return (c.branches ?? [])
        .map((b) => (b.percent != null ? `${b.label || b.id} ${b.percent}%` : b.label || b.id))
        .join(' / ');
    case 'set_trait':
      return c.trait ? `${c.trait} = ${c.value ?? ''}` : '';
    case 'add_score':
      return c.points != null ? `${c.points > 0 ? '+' : ''}${c.points}` : '';
    default:
      return '';
  }
}
