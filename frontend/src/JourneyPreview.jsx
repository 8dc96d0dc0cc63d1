import { useMemo } from 'react';
import { Background, BackgroundVariant, Controls, Handle, Position, ReactFlow } from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import './island.css';
import { graphToFlow } from './graph.js';
import { nodeKind } from './nodeKind.js';

// English fallbacks; the page passes its translated names in `kindLabels`.
const KIND_NAMES = { trigger: 'Trigger', flow: 'Flow', action: 'Action' };

function JourneyStepNode({ data }) {
  const kind = nodeKind(data.nodeType, data.config);
  const handles = data.sourceHandles;
  return (
    <div className={`journey-node journey-node--${kind}`} title={data.nodeType}>
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <span className="journey-node__kind">{data.kindLabels[kind] ?? KIND_NAMES[kind]}</span>
      <span className="journey-node__label">{data.label}</span>
      {handles.map((handle, index) => (
        <Handle
          key={handle ?? ''}
          id={handle ?? undefined}
          type="source"
          position={Position.Right}
          isConnectable={false}
          style={{ top: `${((index + 1) * 100) / (handles.length + 1)}%` }}
        />
      ))}
    </div>
  );
}

const nodeTypes = { journeyStep: JourneyStepNode };

// React Flow only draws an edge when its source node renders a handle with
// the same id, so each node gets one handle per distinct outgoing handle name.
function withSourceHandles(nodes, edges, kindLabels) {
  const handlesByNode = new Map();
  for (const edge of edges) {
    const handles = handlesByNode.get(edge.source) ?? [];
    if (!handles.includes(edge.sourceHandle)) handles.push(edge.sourceHandle);
    handlesByNode.set(edge.source, handles);
  }
  return nodes.map((node) => ({
    ...node,
    data: { ...node.data, kindLabels, sourceHandles: handlesByNode.get(node.id) ?? [null] },
  }));
}

export function IslandError({ message }) {
  return (
    <p className="island-error" role="alert">
      {message}
    </p>
  );
}

export default function JourneyPreview({ graph, kindLabels = {} }) {
  const result = useMemo(() => {
    try {
      const { nodes, edges } = graphToFlow(graph);
      return { nodes: withSourceHandles(nodes, edges, kindLabels), edges };
    } catch (error) {
      return { error: `Cannot show this journey: ${error.message}` };
    }
  }, [graph, kindLabels]);

  if (result.error) return <IslandError message={result.error} />;

  return (
    <div className="journey-preview">
      <ReactFlow
        nodes={result.nodes}
        edges={result.edges}
        nodeTypes={nodeTypes}
        defaultEdgeOptions={{ type: 'smoothstep' }}
        fitView
        fitViewOptions={{ maxZoom: 1 }}
        nodesDraggable={false}
        nodesConnectable={false}
        nodesFocusable={false}
        edgesFocusable={false}
        elementsSelectable={false}
        deleteKeyCode={null}
        zoomOnScroll={false}
        preventScrolling={false}
      >
        <Background variant={BackgroundVariant.Dots} />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
