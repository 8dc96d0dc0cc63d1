import { describe, expect, it } from 'vitest';
import { elapsedText, stepDecision, stepMove, testRunEnding, testRunPath, visitAfter } from './testRun.js';

const STARTED = '2026-11-24T10:00:00Z';

function step(node, type, outcome, minutes = 0, reason = '') {
  const at = new Date(Date.parse(STARTED) + minutes * 60_000).toISOString();
  return { node, type, label: '', entered_at: at, left_at: at, outcome, reason };
}

// Trigger, send that fails over to SMS, a condition, a wait; the canvas's edges with the
// trigger's edge leaving by the unnamed (default) handle.
const EDGES = [
  { id: 'e1', source: 't1', sourceHandle: null, target: 's1' },
  { id: 'e2', source: 's1', sourceHandle: 'failed', target: 's2' },
  { id: 'e3', source: 's1', sourceHandle: 'delivered', target: 'c1' },
  { id: 'e4', source: 's2', sourceHandle: 'delivered', target: 'c1' },
  { id: 'e5', source: 'c1', sourceHandle: 'vip', target: 'w1' },
  { id: 'e6', source: 'c1', sourceHandle: 'else', target: 'x1' },
  { id: 'e7', source: 'w1', sourceHandle: 'timed_out', target: 'c1' },
];

const REPORT = {
  status: 'active',
  reason: '',
  waiting_for: ['Order Completed'],
  started_at: STARTED,
  simulated_until: STARTED,
  problems: [],
  steps: [
    step('t1', 'event_trigger', 'default'),
    step('s1', 'send', 'failed', 0, 'message 3: 43004 not followed'),
    step('s2', 'send', 'delivered', 1, 'message 4'),
    step('c1', 'condition', 'vip', 1, 'rule of vip holds'),
    step('w1', 'wait_for_event', 'timed_out', 1),
    step('c1', 'condition', 'vip', 121, 'rule of vip holds'),
    step('w1', 'wait_for_event', '', 121),
  ],
  messages: [
    { node: 's1', channel: 'wechat_template', template: 'hello', recipient: 'o-1', status: 'failed', reason: '43004' },
    { node: 's2', channel: 'sms', template: 'hello-sms', recipient: '+86138', status: 'delivered', reason: '' },
  ],
  tasks: [],
};

describe('a test run on the canvas', () => {
  const path = testRunPath(REPORT, EDGES);

  it('numbers the steps and finds the edge each one left by', () => {
    expect(path.steps.map((s) => [s.order, s.node, s.edgeId])).toEqual([
      [1, 't1', 'e1'],
      [2, 's1', 'e2'],
      [3, 's2', 'e4'],
      [4, 'c1', 'e5'],
      [5, 'w1', 'e7'],
      [6, 'c1', 'e5'],
      [7, 'w1', null],
    ]);
  });

  it('gives each visited node and taken edge its order numbers, a loop more than one', () => {
    expect(Object.fromEntries(path.nodes)).toEqual({
      t1: { orders: [1], handles: ['default'] },
      s1: { orders: [2], handles: ['failed'] },
      s2: { orders: [3], handles: ['delivered'] },
      c1: { orders: [4, 6], handles: ['vip'] },
      w1: { orders: [5, 7], handles: ['timed_out'] },
    });
    expect(Object.fromEntries(path.edges)).toEqual({ e1: [1], e2: [2], e4: [3], e5: [4, 6], e7: [5] });
    // Not taken: the WeChat message's delivered edge, the condition's else.
    expect(path.edges.has('e3') || path.edges.has('e6')).toBe(false);
    expect(path.nodes.has('x1')).toBe(false);
  });

  it('tells each step its time after entering and its node’s sandbox messages', () => {
    expect(path.steps.map((s) => s.afterSeconds)).toEqual([0, 0, 60, 60, 60, 7260, 7260]);
    expect(path.steps[1].messages.map((m) => m.status)).toEqual(['failed']);
    expect(path.steps[2].messages.map((m) => m.channel)).toEqual(['sms']);
    expect(path.steps[3].messages).toEqual([]);
  });

  it('takes no edge the drawing no longer has between two steps', () => {
    const redrawn = testRunPath(REPORT, EDGES.filter((e) => e.id !== 'e4'));
    expect(redrawn.steps[2].edgeId).toBe(null);
    expect(redrawn.nodes.get('s2').orders).toEqual([3]);
  });

  it('is empty without a report', () => {
    const empty = testRunPath(null, EDGES);
    expect([empty.steps, empty.nodes.size, empty.edges.size, empty.ending]).toEqual([[], 0, 0, null]);
  });
});

describe('where the customer ended', () => {
  const ended = (fields, steps = REPORT.steps) => testRunEnding({ ...REPORT, waiting_for: [], ...fields, steps });

  it('is waiting for events at the last step, or still in the journey', () => {
    expect(testRunEnding(REPORT)).toEqual({ kind: 'waiting', node: 'w1', events: ['Order Completed'] });
    expect(ended({ status: 'active' })).toEqual({ kind: 'active', node: 'w1' });
  });

  it('is completed by a goal, an exit, a handle that ends, or exited or failed with the reason', () => {
    const goal = [step('t1', 'event_trigger', 'default'), step('g1', 'goal', 'end', 0, 'goal')];
    expect(ended({ status: 'completed', reason: 'goal' }, goal)).toEqual({ kind: 'completed-goal', node: 'g1' });
    const exit = [step('t1', 'event_trigger', 'default'), step('x1', 'exit', 'end', 0, 'exit')];
    expect(ended({ status: 'completed', reason: 'exit' }, exit)).toEqual({ kind: 'completed-exit', node: 'x1' });
    const byHandle = [step('t1', 'event_trigger', 'default'), step('s1', 'send', 'no_response')];
    expect(ended({ status: 'completed', reason: 'left s1 by no_response' }, byHandle)).toEqual({
      kind: 'completed-by-handle',
      node: 's1',
      handle: 'no_response',
    });
    expect(ended({ status: 'failed', reason: 's1: The channel account 9 no longer exists.' })).toEqual({
      kind: 'failed',
      node: 'w1',
      reason: 's1: The channel account 9 no longer exists.',
    });
    expect(ended({ status: 'exited', reason: 'archived' }).kind).toBe('exited');
  });
});

describe('a step’s decision', () => {
  it('is worded for conditions, splits, waits, goals, exits and triggers; else the engine’s reason', () => {
    expect(stepDecision(step('c1', 'condition', 'vip', 0, 'rule of vip holds'), 'flow')).toEqual({
      key: 'testWhy.branch',
      handle: 'vip',
    });
    expect(stepDecision(step('c1', 'condition', 'else'), 'flow')).toEqual({ key: 'testWhy.else' });
    expect(stepDecision(step('r1', 'random_split', 'b', 0, 'bucket 73'), 'flow')).toEqual({
      key: 'testWhy.bucket',
      handle: 'b',
      bucket: 73,
    });
    expect(stepDecision(step('w1', 'wait_for_event', 'timed_out'), 'flow')).toEqual({ key: 'testWhy.timedOut' });
    expect(stepDecision(step('w1', 'wait_for_event', ''), 'flow')).toBe(null); // still waiting
    expect(stepDecision(step('g1', 'goal', 'end'), 'flow')).toEqual({ key: 'testWhy.goalEnds' });
    expect(stepDecision(step('g1', 'goal', 'default'), 'flow')).toEqual({ key: 'testWhy.goal' });
    expect(stepDecision(step('t1', 'event_trigger', 'default'), 'trigger')).toEqual({ key: 'testWhy.entered' });
    expect(stepDecision(step('s1', 'send', 'failed', 0, 'something new'), 'action')).toBe(null);
  });

  it('is worded for sends, calls, webhooks, delays, stages, tasks and data changes, with their values', () => {
    const why = (type, outcome, reason) => stepDecision(step('n1', type, outcome, 0, reason), 'action');
    expect(why('send', 'delivered', 'message 3')).toEqual({ key: 'testWhy.delivered' });
    expect(why('send', 'failed', 'message 3: 43004 not followed')).toEqual({
      key: 'testWhy.sendFailed',
      values: { detail: '43004 not followed' },
    });
    expect(why('send', 'no_response', 'message 3 is unknown')).toEqual({ key: 'testWhy.noReceipt', status: 'unknown' });
    expect(why('send', '', 'contact policy: Quiet hours: held until they end.')).toEqual({
      key: 'testWhy.policyHeld',
      values: { detail: 'Quiet hours: held until they end.' },
    });
    expect(why('send', 'failed', 'contact policy: Quiet hours: skipped.').key).toBe('testWhy.policySkipped');
    expect(why('send', '', '')).toEqual({ key: 'testWhy.awaitingReceipt' });
    expect(why('call_webhook', 'success', 'HTTP 204')).toEqual({ key: 'testWhy.httpAnswered', values: { code: '204' } });
    expect(why('call_webhook', 'failed', 'HTTP 500').key).toBe('testWhy.httpRefused');
    expect(why('call_webhook', 'failed', 'no answer: timed out')).toEqual({
      key: 'testWhy.noAnswer',
      values: { detail: 'timed out' },
    });
    expect(why('call_webhook', 'success', 'test mode: not called')).toEqual({ key: 'testWhy.notCalled' });
    expect(why('ai_call', 'answered', 'call 9 (renewal): 95 s')).toEqual({
      key: 'testWhy.callLasted',
      values: { script: 'renewal', seconds: '95' },
    });
    expect(why('ai_call', 'not_answered', 'call 9 (renewal): busy')).toEqual({
      key: 'testWhy.callNotAnswered',
      values: { script: 'renewal', detail: 'busy' },
    });
    expect(why('delay', 'default', 'inside the window (Asia/Shanghai)')).toEqual({
      key: 'testWhy.inWindow',
      values: { zone: 'Asia/Shanghai' },
    });
    expect(why('delay', '', 'until 09:30 Asia/Shanghai')).toEqual({
      key: 'testWhy.untilTime',
      values: { time: '09:30', zone: 'Asia/Shanghai' },
    });
    expect(why('delay', '', '')).toEqual({ key: 'testWhy.delayWait' });
    expect(why('delay', 'default', '')).toEqual({ key: 'testWhy.delayOver' });
    expect(why('set_stage', 'default', 'stage hot')).toEqual({ key: 'testWhy.stageSet', values: { stage: 'hot' } });
    expect(why('create_task', 'done', 'task 4 closed by sales')).toEqual({
      key: 'testWhy.taskClosed',
      handle: 'done',
      values: { who: 'sales' },
    });
    expect(why('create_task', 'timed_out', 'task 4 still open')).toEqual({ key: 'testWhy.taskOpen' });
    expect(why('add_tag', 'default', '')).toEqual({ key: 'testWhy.applied' });
  });
});

describe('elapsed time', () => {
  const strings = { daysCount: '{count} d', hoursCount: '{count} h', minutesCount: '{count} min' };

  it('is said in the largest units, from entering', () => {
    expect(elapsedText(0, strings)).toBe('+0 min');
    expect(elapsedText(59, strings)).toBe('+0 min');
    expect(elapsedText(1800, strings)).toBe('+30 min');
    expect(elapsedText(7200, strings)).toBe('+2 h');
    expect(elapsedText(93_900, strings)).toBe('+1 d 2 h 5 min');
  });
});

describe('moving through the steps', () => {
  it('stays within the path', () => {
    expect(stepMove(0, -1, 5)).toBe(0);
    expect(stepMove(3, 1, 5)).toBe(4);
    expect(stepMove(4, 1, 5)).toBe(4);
    expect(stepMove(0, 1, 0)).toBe(0);
  });

  it('from a clicked step goes to its next visit, else back to its first', () => {
    expect(visitAfter([4, 6], 0)).toBe(3);
    expect(visitAfter([4, 6], 3)).toBe(5);
    expect(visitAfter([4, 6], 5)).toBe(3);
    expect(visitAfter([2], 6)).toBe(1);
  });
});
