import { describe, expect, it } from 'vitest';
import { flowToGraph, graphToFlow, humanizeType } from './graph.js';

const journey = {
  nodes: [
    { id: 'start', type: 'segment_trigger', config: { segment: 42 }, position: { x: 0, y: 0 } },
    { id: 'check', type: 'condition', config: { label: 'Has ordered?' }, position: { x: 0, y: 120 } },
    { id: 'mail', type: 'send_message', config: { channel: 'email' }, position: { x: -150, y: 240 } },
    { id: 'done', type: 'exit', config: {}, position: { x: 150, y: 240 } },
  ],
  edges: [
    { id: 'e1', source: 'start', sourceHandle: null, target: 'check' },
    { id: 'e2', source: 'check', sourceHandle: 'no', target: 'mail' },
    { id: 'e3', source: 'check', sourceHandle: 'yes', target: 'done' },
    { id: 'e4', source: 'mail', sourceHandle: 'default', target: 'done' },
  ],
};

describe('graphToFlow', () => {
  it('converts nodes to React Flow nodes carrying type, config and position', () => {
    const { nodes } = graphToFlow(journey);
    expect(nodes).toHaveLength(4);
    expect(nodes[2]).toEqual({
      id: 'mail',
      type: 'journeyStep',
      position: { x: -150, y: 240 },
      data: { nodeType: 'send_message', config: { channel: 'email' }, label: 'Send message' },
    });
  });

  it('keeps source, target and sourceHandle on edges', () => {
    const { edges } = graphToFlow(journey);
    expect(edges.map((e) => [e.id, e.source, e.sourceHandle, e.target])).toEqual([
      ['e1', 'start', null, 'check'],
      ['e2', 'check', 'no', 'mail'],
      ['e3', 'check', 'yes', 'done'],
      ['e4', 'mail', 'default', 'done'],
    ]);
  });

  it('labels nodes from config.label, falling back to the humanised type', () => {
    const labels = graphToFlow(journey).nodes.map((n) => n.data.label);
    expect(labels).toEqual(['Segment trigger', 'Has ordered?', 'Send message', 'Exit']);
  });

  it('labels edges with their handle name unless it is null or "default"', () => {
    const labels = Object.fromEntries(graphToFlow(journey).edges.map((e) => [e.id, e.label]));
    expect(labels).toEqual({ e1: undefined, e2: 'no', e3: 'yes', e4: undefined });
    expect('label' in graphToFlow(journey).edges[0]).toBe(false);
  });

  it('accepts a graph without edges or config and defaults missing fields', () => {
    const { nodes, edges } = graphToFlow({ nodes: [{ id: 'a', type: 'goal' }] });
    expect(edges).toEqual([]);
    expect(nodes[0].position).toEqual({ x: 0, y: 0 });
    expect(nodes[0].data).toEqual({ nodeType: 'goal', config: {}, label: 'Goal' });
  });

  it('rejects an edge pointing to a missing node', () => {
    const graph = { ...journey, edges: [{ id: 'bad', source: 'start', sourceHandle: null, target: 'ghost' }] };
    expect(() => graphToFlow(graph)).toThrow('Edge "bad" points to missing target node "ghost"');
    const fromGhost = { ...journey, edges: [{ id: 'bad', source: 'ghost', target: 'start' }] };
    expect(() => graphToFlow(fromGhost)).toThrow('missing source node "ghost"');
  });

  it('rejects duplicated node ids', () => {
    const graph = { nodes: [...journey.nodes, { id: 'check', type: 'delay', config: {} }], edges: [] };
    expect(() => graphToFlow(graph)).toThrow('Duplicate node id "check"');
  });

  it('rejects a node without an id', () => {
    const graph = { nodes: [journey.nodes[0], { type: 'delay', config: {} }], edges: [] };
    expect(() => graphToFlow(graph)).toThrow('Node at index 1 has no id');
  });

  it('rejects nodes or edges that are not arrays', () => {
    expect(() => graphToFlow({ nodes: {}, edges: [] })).toThrow('must be arrays');
  });
});

describe('flowToGraph', () => {
  it('round-trips a graph produced by graphToFlow exactly', () => {
    const { nodes, edges } = graphToFlow(journey);
    expect(flowToGraph(nodes, edges)).toEqual(journey);
  });

  it('reads moved positions and edited config back from the flow', () => {
    const { nodes, edges } = graphToFlow(journey);
    nodes[0] = { ...nodes[0], position: { x: 10, y: 20 }, data: { ...nodes[0].data, config: { segment: 7 } } };
    const graph = flowToGraph(nodes, edges);
    expect(graph.nodes[0]).toEqual({
      id: 'start',
      type: 'segment_trigger',
      config: { segment: 7 },
      position: { x: 10, y: 20 },
    });
  });

  it('does not write the display label into the graph', () => {
    const { nodes, edges } = graphToFlow(journey);
    const graph = flowToGraph(nodes, edges);
    expect(graph.nodes[2].config).not.toHaveProperty('label');
    expect(graph.edges[1]).not.toHaveProperty('label');
  });

  it('validates the flow it converts', () => {
    const { nodes, edges } = graphToFlow(journey);
    expect(() => flowToGraph(nodes.slice(1), edges)).toThrow('missing source node "start"');
  });
});

describe('humanizeType', () => {
  it('turns snake_case and kebab-case type names into a sentence', () => {
    expect(humanizeType('wait_for_event')).toBe('Wait for event');
    expect(humanizeType('add-tag')).toBe('Add tag');
    expect(humanizeType(undefined)).toBe('Step');
  });
});
