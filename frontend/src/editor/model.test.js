import { describe, expect, it } from 'vitest';
import {
  connectionProblem,
  copySelection,
  editorToGraph,
  graphToEditor,
  initialConfig,
  newNodeId,
  nodeSummary,
  outputHandles,
  pasteClipboard,
  problemsByField,
  problemsByNode,
  ruleProblems,
} from './model.js';

const TYPES = {
  event_trigger: { type: 'event_trigger', kind: 'trigger', handles: ['default'], dynamic_handles: false },
  send: { type: 'send', kind: 'action', handles: ['delivered', 'failed', 'no_response'], dynamic_handles: false },
  delay: { type: 'delay', kind: 'flow', handles: ['default'], dynamic_handles: false },
  condition: { type: 'condition', kind: 'flow', handles: ['else'], dynamic_handles: true },
  random_split: { type: 'random_split', kind: 'flow', handles: [], dynamic_handles: true },
  goal: {
    type: 'goal',
    kind: 'flow',
    handles: ['default'],
    dynamic_handles: false,
    handles_when: [{ field: 'exit', equals: true, handles: [] }],
  },
  exit: { type: 'exit', kind: 'flow', handles: [], dynamic_handles: false },
};

const serverGraph = {
  nodes: [
    { id: 't1', type: 'event_trigger', config: { event: 'signed_up' }, position: { x: 0, y: 0 } },
    { id: 'wx', type: 'send', config: { account: 1, template: 'wechat-order' }, position: { x: 300.4, y: 0 } },
    { id: 'sms', type: 'send', config: { account: 2, template: 'sms-cart', ends: ['failed', 'no_response', 'delivered'] }, position: { x: 600, y: 120 } },
    { id: 'd1', type: 'delay', config: { seconds: 7200 }, position: { x: 600, y: 0 } },
  ],
  edges: [
    { id: 'e1', source: 't1', sourceHandle: null, target: 'wx' },
    { id: 'e2', source: 'wx', sourceHandle: 'failed', target: 'sms' },
    { id: 'e3', source: 'wx', sourceHandle: 'delivered', target: 'd1' },
  ],
};

describe('handles', () => {
  it('are the static handles, or a dynamic node type’s branch ids followed by its static ones', () => {
    expect(outputHandles(TYPES.send, {})).toEqual(['delivered', 'failed', 'no_response']);
    expect(outputHandles(TYPES.condition, { branches: [{ id: 'vip' }, { id: 'new' }] })).toEqual(['vip', 'new', 'else']);
    expect(outputHandles(TYPES.random_split, { branches: [{ id: 'a' }, { id: 'b' }] })).toEqual(['a', 'b']);
    expect(outputHandles(TYPES.condition, { branches: [{ id: '' }] })).toEqual(['else']);
    expect(outputHandles(TYPES.exit, {})).toEqual([]);
  });

  it('follow the palette’s rules of config values: a goal that ends the journey has none', () => {
    expect(outputHandles(TYPES.goal, { exit: true })).toEqual([]);
    expect(outputHandles(TYPES.goal, { exit: false })).toEqual(['default']);
    expect(outputHandles(TYPES.goal, {})).toEqual(['default']);
  });

  it('take an unset field’s schema default, the first rule that holds winning', () => {
    const quiet = {
      type: 'notify',
      handles: ['sent', 'failed'],
      config_schema: { properties: { silent: { type: 'boolean', default: true } } },
      handles_when: [
        { field: 'silent', equals: true, handles: ['sent'] },
        { field: 'silent', equals: true, handles: [] },
      ],
    };
    expect(outputHandles(quiet, {})).toEqual(['sent']);
    expect(outputHandles(quiet, { silent: false })).toEqual(['sent', 'failed']);
  });
});

describe('connections', () => {
  const { nodes, edges } = graphToEditor(serverGraph);
  const problem = (source, sourceHandle, target) => connectionProblem({ source, sourceHandle, target }, nodes, edges, TYPES);

  it('are refused into a trigger, onto the same step, and from a handle already connected', () => {
    expect(problem('d1', 'default', 't1')).toBe('into-trigger');
    expect(problem('sms', 'failed', 'sms')).toBe('self');
    expect(problem('wx', 'failed', 'd1')).toBe('handle-taken');
    expect(problem('t1', null, 'd1')).toBe('handle-taken'); // no handle named: the default one
    expect(problem('wx', 'clicked', 'd1')).toBe('no-handle');
  });

  it('are allowed from a free handle to any other step, several into one', () => {
    expect(problem('wx', 'no_response', 'd1')).toBeNull();
    expect(problem('sms', 'delivered', 'd1')).toBeNull();
  });
});

describe('conversion', () => {
  it('reads the server graph, edges without a handle leaving by "default"', () => {
    const { nodes, edges } = graphToEditor(serverGraph);
    expect(nodes[1]).toEqual({
      id: 'wx',
      type: 'step',
      position: { x: 300.4, y: 0 },
      data: { nodeType: 'send', config: { account: 1, template: 'wechat-order' } },
    });
    expect(edges.map((e) => [e.id, e.source, e.sourceHandle, e.target])).toEqual([
      ['e1', 't1', 'default', 'wx'],
      ['e2', 'wx', 'failed', 'sms'],
      ['e3', 'wx', 'delivered', 'd1'],
    ]);
  });

  it('writes it back with whole positions, ends only on unconnected handles, no empty label', () => {
    const { nodes, edges } = graphToEditor(serverGraph);
    nodes[0].data.config.label = '';
    const graph = editorToGraph(nodes, edges, TYPES);
    expect(graph.nodes[1].position).toEqual({ x: 300, y: 0 });
    expect(graph.nodes[0].config).toEqual({ event: 'signed_up' });
    expect(graph.nodes[2].config.ends).toEqual(['failed', 'no_response', 'delivered']);
    const connected = editorToGraph(nodes, [...edges, { id: 'x', source: 'sms', sourceHandle: 'delivered', target: 'd1' }], TYPES);
    expect(connected.nodes[2].config.ends).toEqual(['failed', 'no_response']);
    expect(graph.edges[0]).toEqual({ id: 'e1', source: 't1', sourceHandle: 'default', target: 'wx' });
  });

  it('round-trips the graph', () => {
    const { nodes, edges } = graphToEditor(serverGraph);
    const again = graphToEditor(editorToGraph(nodes, edges, TYPES));
    expect(again.edges).toEqual(edges);
    expect(again.nodes.map((n) => n.data)).toEqual(nodes.map((n) => n.data));
  });
});

describe('new steps', () => {
  it('get the first free id named after their type', () => {
    expect(newNodeId('event_trigger', new Set())).toBe('event_1');
    expect(newNodeId('send', new Set(['send_1', 'send_2']))).toBe('send_3');
  });

  it('start from the schema defaults, branches for splits', () => {
    const send = { type: 'send', config_schema: { properties: { label: { default: '' }, no_response_seconds: { default: 86400 }, account: {} } } };
    expect(initialConfig(send)).toEqual({ no_response_seconds: 86400 });
    // A condition starts with one branch whose rule has no condition yet, as the rule builder draws it.
    expect(initialConfig({ type: 'condition' }).branches).toEqual([{ id: 'yes', label: '', rule: { and: [] } }]);
    expect(initialConfig({ type: 'random_split' }).branches.map((b) => b.percent)).toEqual([50, 50]);
  });
});

describe('copy and paste', () => {
  it('copies the selected steps with the edges between them and pastes fresh, selected copies', () => {
    const { nodes, edges } = graphToEditor(serverGraph);
    nodes[1].selected = true; // wx
    nodes[2].selected = true; // sms
    const clipboard = copySelection(nodes, edges);
    expect(clipboard.nodes.map((n) => n.id)).toEqual(['wx', 'sms']);
    expect(clipboard.edges).toEqual([{ source: 'wx', sourceHandle: 'failed', target: 'sms' }]);
    const pasted = pasteClipboard(clipboard, nodes.map((n) => n.id));
    expect(pasted.nodes.map((n) => [n.id, n.position, n.selected])).toEqual([
      ['send_1', { x: 340.4, y: 40 }, true],
      ['send_2', { x: 640, y: 160 }, true],
    ]);
    expect(pasted.edges).toEqual([{ id: 'send_1-failed-send_2', source: 'send_1', sourceHandle: 'failed', target: 'send_2' }]);
    pasted.nodes[0].data.config.template = 'changed';
    expect(nodes[1].data.config.template).toBe('wechat-order');
  });
});

describe('validation problems', () => {
  const problems = [
    { node: 'd1', field: 'config.', message: 'give either seconds or until_time' },
    { node: 'wx', field: 'config.template', message: 'String should have at least 1 character' },
    { node: 'wx', field: 'edges', message: 'The handle “no_response” leads nowhere' },
    { node: null, field: 'nodes', message: 'A journey needs a trigger' },
  ];

  it('are grouped by node, those of the whole journey under null', () => {
    const byNode = problemsByNode(problems);
    expect(byNode.get('wx')).toHaveLength(2);
    expect(byNode.get(null)[0].message).toBe('A journey needs a trigger');
    expect(byNode.has('t1')).toBe(false);
  });

  it('are placed on the config field they name, the rest on the step', () => {
    expect(problemsByField(problemsByNode(problems).get('wx'))).toEqual({
      template: ['String should have at least 1 character'],
      '': ['The handle “no_response” leads nowhere'],
    });
    expect(problemsByField(problemsByNode(problems).get('d1'))).toEqual({ '': ['give either seconds or until_time'] });
  });

  describe('inside a condition\'s rules', () => {
    const conditionProblems = [
      { node: 'c1', field: 'config.branches.0.rule', path: '$.and[1].within_days', message: 'Input should be greater than or equal to 1' },
      { node: 'c1', field: 'config.branches.1.rule', path: '$.event', message: 'no event is called “Order Complete”' },
      { node: 'c1', field: 'config.branches.1.rule', message: 'Input should be a valid dictionary' },
      { node: 'c1', field: 'config.branches.1.id', message: 'use 1 to 40 letters' },
    ];

    it('are given to the rule builder of their branch with the JSON path of their condition', () => {
      expect(ruleProblems(conditionProblems, 'branches.0.rule')).toEqual([
        { path: '$.and[1].within_days', message: 'Input should be greater than or equal to 1' },
      ]);
      // One without a path is about the rule as a whole: the field shows it, not a condition.
      expect(ruleProblems(conditionProblems, 'branches.1.rule')).toEqual([{ path: '$.event', message: 'no event is called “Order Complete”' }]);
      expect(ruleProblems(conditionProblems, 'branches.2.rule')).toEqual([]);
      expect(ruleProblems(undefined, 'branches.0.rule')).toEqual([]);
    });

    it('name their condition when shown as text, for the rule edited as JSON', () => {
      expect(problemsByField(conditionProblems)).toEqual({
        'branches.0.rule': ['$.and[1].within_days: Input should be greater than or equal to 1'],
        'branches.1.rule': ['$.event: no event is called “Order Complete”', 'Input should be a valid dictionary'],
        'branches.1.id': ['use 1 to 40 letters'],
      });
    });
  });
});

describe('summaries', () => {
  const strings = { daysCount: '{count} 天', hoursCount: '{count} 小时', minutesCount: '{count} 分钟', secondsCount: '{count} 秒' };
  it('tell in one line what a step is set to do, with names instead of keys', () => {
    const names = { tags: { lead: '线索' }, accounts: { 1: '服务号' }, templates: { 'wechat-order': '发货通知' } };
    expect(nodeSummary('delay', { seconds: 7200 }, { strings })).toBe('2 小时');
    expect(nodeSummary('delay', { until_time: '09:30' }, { strings })).toBe('→ 09:30');
    expect(nodeSummary('add_tag', { tag: 'lead' }, { strings, names })).toBe('线索');
    expect(nodeSummary('send', { account: 1, template: 'wechat-order' }, { strings, names })).toBe('服务号 · 发货通知');
    expect(nodeSummary('condition', { branches: [{ id: 'vip', label: '会员' }] }, { strings })).toBe('会员');
    expect(nodeSummary('wait_for_event', { event: 'paid', timeout_seconds: 86400 }, { strings })).toBe('paid · ≤ 1 天');
    expect(nodeSummary('exit', {}, { strings })).toBe('');
    expect(nodeSummary('delay', { seconds: 90 }, { strings })).toBe('90 秒');
  });
});
