// Conversion between the server's journey graph format and React Flow's
// {nodes, edges}. Kept free of React so it can be unit-tested in Node.

const DEFAULT_HANDLE = 'default';

export function humanizeType(type) {
  const words = String(type ?? '').replace(/[_-]+/g, ' ').trim();
  if (!words) return 'Step';
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function nodeLabel(node) {
  const label = node.config?.label;
  return typeof label === 'string' && label.trim() ? label : humanizeType(node.type);
}

function edgeLabel(sourceHandle) {
  return sourceHandle == null || sourceHandle === DEFAULT_HANDLE ? undefined : sourceHandle;
}

function validate(nodes, edges) {
  const ids = new Set();
  nodes.forEach((node, index) => {
    if (node?.id == null || node.id === '') {
      throw new Error(`Node at index ${index} has no id`);
    }
    if (ids.has(node.id)) {
      throw new Error(`Duplicate node id "${node.id}"`);
    }
    ids.add(node.id);
  });
  for (const edge of edges) {
    for (const end of ['source', 'target']) {
      if (!ids.has(edge[end])) {
        throw new Error(`Edge "${edge.id}" points to missing ${end} node "${edge[end]}"`);
      }
    }
  }
}

export function graphToFlow(graph) {
  const graphNodes = graph?.nodes ?? [];
  const graphEdges = graph?.edges ?? [];
  if (!Array.isArray(graphNodes) || !Array.isArray(graphEdges)) {
    throw new Error('Graph "nodes" and "edges" must be arrays');
  }
  validate(graphNodes, graphEdges);

  const nodes = graphNodes.map((node) => ({
    id: node.id,
    type: 'journeyStep',
    position: { x: node.position?.x ?? 0, y: node.position?.y ?? 0 },
    data: { nodeType: node.type, config: node.config ?? {}, label: nodeLabel(node) },
  }));

  const edges = graphEdges.map((edge) => {
    const flowEdge = {
      id: edge.id,
      source: edge.source,
      sourceHandle: edge.sourceHandle ?? null,
      target: edge.target,
    };
    const label = edgeLabel(edge.sourceHandle);
    if (label !== undefined) flowEdge.label = label;
    return flowEdge;
  });

  return { nodes, edges };
}

export function flowToGraph(nodes, edges) {
  const graph = {
    nodes: nodes.map((node) => ({
      id: node.id,
      type: node.data?.nodeType,
      config: node.data?.config ?? {},
      position: { x: node.position?.x ?? 0, y: node.position?.y ?? 0 },
    })),
    edges: edges.map((edge) => ({
      id: edge.id,
      source: edge.source,
      sourceHandle: edge.sourceHandle ?? null,
      target: edge.target,
    })),
  };
  validate(graph.nodes, graph.edges);
  return graph;
}
