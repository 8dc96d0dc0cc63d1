// A test run's report (POST /api/journeys/<id>/test/, see journeys/testmode.py) laid onto the
// canvas, free of React: the steps in order with the edge each one left by, the visited nodes and
// taken edges with their order numbers, where the customer ended, and the decisions the editor can
// tell in the reader's language (the engine records its reasons untranslated).

import { DEFAULT_HANDLE } from './model.js';

// The engine's outcome of a step that ended the journey rather than leaving by a handle.
export const END_OUTCOME = 'end';

function secondsBetween(from, to) {
  const start = Date.parse(from);
  const end = Date.parse(to);
  if (Number.isNaN(start) || Number.isNaN(end)) return 0;
  return Math.max(0, Math.round((end - start) / 1000));
}

// The report's steps, each numbered from 1 with its time after entering (on the simulated clock),
// the edge it left by (null when it ended, waits, or the drawing no longer has that edge) and the
// sandbox messages and tasks of its node; plus, by node and by edge, the order numbers of their
// visits (a loop visits a node more than once).
export function testRunPath(report, edges) {
  const reportSteps = report?.steps ?? [];
  const nodes = new Map();
  const takenEdges = new Map();
  const steps = reportSteps.map((step, index) => {
    const order = index + 1;
    const next = reportSteps[index + 1];
    const edge = next
      ? edges.find(
          (candidate) =>
            candidate.source === step.node &&
            (candidate.sourceHandle ?? DEFAULT_HANDLE) === step.outcome &&
            candidate.target === next.node,
        )
      : undefined;
    const visited = nodes.get(step.node) ?? { orders: [], handles: [] };
    visited.orders.push(order);
    if (step.outcome && step.outcome !== END_OUTCOME && !visited.handles.includes(step.outcome)) {
      visited.handles.push(step.outcome);
    }
    nodes.set(step.node, visited);
    if (edge) takenEdges.set(edge.id, [...(takenEdges.get(edge.id) ?? []), order]);
    return {
      ...step,
      order,
      afterSeconds: secondsBetween(report.started_at, step.entered_at),
      edgeId: edge?.id ?? null,
      messages: (report.messages ?? []).filter((message) => message.node === step.node),
      tasks: (report.tasks ?? []).filter((task) => task.node === step.node),
    };
  });
  return { steps, nodes, edges: takenEdges, ending: testRunEnding(report) };
}

// Where the customer ended, as a kind the editor words: waiting (for events), active (still in the
// journey, nothing awaited), completed (by a goal or an exit, or by a handle that ends the
// journey), exited or failed; with the node it ended at.
export function testRunEnding(report) {
  if (!report) return null;
  const last = (report.steps ?? []).at(-1) ?? null;
  const node = last?.node ?? null;
  const reason = report.reason ?? '';
  if (report.status === 'active') {
    const events = report.waiting_for ?? [];
    return events.length ? { kind: 'waiting', node, events } : { kind: 'active', node };
  }
  if (report.status === 'completed') {
    if (last?.outcome && last.outcome !== END_OUTCOME) return { kind: 'completed-by-handle', node, handle: last.outcome };
    if (reason === 'goal') return { kind: 'completed-goal', node };
    if (reason === 'exit') return { kind: 'completed-exit', node };
    return { kind: 'completed', node };
  }
  return { kind: report.status, node, reason };
}

// The engine's reasons, as journeys/nodes words them (in English, with their values inline).
const REASONS = {
  message: /^message \d+$/,
  messageFailed: /^message \d+: ([\s\S]*)$/,
  messageStatus: /^message \d+ is (\w+)$/,
  policy: /^contact policy: ([\s\S]*)$/,
  http: /^HTTP (\d+)$/,
  noAnswer: /^no answer: ([\s\S]*)$/,
  call: /^call \d+ \(([^)]*)\): ([\s\S]*)$/,
  seconds: /^(\d+) s$/,
  inWindow: /^inside the window \((.+)\)$/,
  windowWait: /^until the window opens \((.+)\)$/,
  untilTime: /^until (\d{1,2}:\d{2}) (.+)$/,
  stage: /^stage (.+)$/,
  taskClosed: /^task \d+ closed by (.+)$/,
  taskOpen: /^task \d+ still open$/,
};
const DATA_ACTIONS = new Set(['add_tag', 'remove_tag', 'set_trait', 'add_score']);

function sendDecision(step, reason) {
  const policy = REASONS.policy.exec(reason);
  if (policy) return { key: step.outcome ? 'testWhy.policySkipped' : 'testWhy.policyHeld', values: { detail: policy[1] } };
  if (!step.outcome) return reason ? null : { key: 'testWhy.awaitingReceipt' };
  if (step.outcome === 'delivered' && REASONS.message.test(reason)) return { key: 'testWhy.delivered' };
  const failed = REASONS.messageFailed.exec(reason);
  if (step.outcome === 'failed' && failed) return { key: 'testWhy.sendFailed', values: { detail: failed[1] } };
  const status = REASONS.messageStatus.exec(reason);
  if (step.outcome === 'no_response' && status) return { key: 'testWhy.noReceipt', status: status[1] };
  return null;
}

function webhookDecision(step, reason) {
  if (reason === 'test mode: not called') return { key: 'testWhy.notCalled' };
  const http = REASONS.http.exec(reason);
  if (http) return { key: step.outcome === 'success' ? 'testWhy.httpAnswered' : 'testWhy.httpRefused', values: { code: http[1] } };
  const none = REASONS.noAnswer.exec(reason);
  return none ? { key: 'testWhy.noAnswer', values: { detail: none[1] } } : null;
}

function callDecision(step, reason) {
  if (!step.outcome) return reason ? null : { key: 'testWhy.callAwaiting' };
  if (reason === 'test mode: not called') return { key: 'testWhy.notCalled' };
  const call = REASONS.call.exec(reason);
  if (!call) return null;
  const [, script, rest] = call;
  const seconds = REASONS.seconds.exec(rest);
  if (seconds) return { key: 'testWhy.callLasted', values: { script, seconds: seconds[1] } };
  if (rest === 'no result') return { key: 'testWhy.callNoResult', values: { script } };
  return { key: 'testWhy.callNotAnswered', values: { script, detail: rest } };
}

function delayDecision(step, reason) {
  const inside = REASONS.inWindow.exec(reason);
  if (inside) return { key: 'testWhy.inWindow', values: { zone: inside[1] } };
  const opens = REASONS.windowWait.exec(reason);
  if (opens) return { key: 'testWhy.windowWait', values: { zone: opens[1] } };
  const until = REASONS.untilTime.exec(reason);
  if (until) return { key: 'testWhy.untilTime', values: { time: until[1], zone: until[2] } };
  if (reason) return null;
  return { key: step.outcome ? 'testWhy.delayOver' : 'testWhy.delayWait' };
}

function taskDecision(step, reason) {
  if (!step.outcome) return reason ? null : { key: 'testWhy.taskAwaiting' };
  const closed = REASONS.taskClosed.exec(reason);
  if (closed) return { key: 'testWhy.taskClosed', handle: step.outcome, values: { who: closed[1] } };
  return step.outcome === 'timed_out' && REASONS.taskOpen.test(reason) ? { key: 'testWhy.taskOpen' } : null;
}

// What decided a step, as a key of the editor's strings with its values (``values``, and ``handle``
// or ``status`` that the panel names), for the decisions the editor can word; null: the engine's own
// reason is shown.
export function stepDecision(step, nodeKind) {
  if (nodeKind === 'trigger') return { key: 'testWhy.entered' };
  const reason = step.reason ?? '';
  if (DATA_ACTIONS.has(step.type)) return reason ? null : { key: 'testWhy.applied' };
  switch (step.type) {
    case 'send':
      return sendDecision(step, reason);
    case 'call_webhook':
      return webhookDecision(step, reason);
    case 'ai_call':
      return callDecision(step, reason);
    case 'delay':
      return delayDecision(step, reason);
    case 'create_task':
      return taskDecision(step, reason);
    case 'set_stage': {
      const stage = REASONS.stage.exec(reason);
      return stage ? { key: 'testWhy.stageSet', values: { stage: stage[1] } } : null;
    }
    case 'condition':
      return step.outcome === 'else' ? { key: 'testWhy.else' } : { key: 'testWhy.branch', handle: step.outcome };
    case 'random_split': {
      const bucket = /bucket (\d+)/.exec(reason);
      return bucket ? { key: 'testWhy.bucket', handle: step.outcome, bucket: Number(bucket[1]) } : null;
    }
    case 'wait_for_event':
      if (step.outcome === 'happened') return { key: 'testWhy.happened' };
      if (step.outcome === 'timed_out') return { key: 'testWhy.timedOut' };
      return null;
    case 'goal':
      return { key: step.outcome === END_OUTCOME ? 'testWhy.goalEnds' : 'testWhy.goal' };
    case 'exit':
      return { key: 'testWhy.exit' };
    default:
      return null;
  }
}

// "+1 d 2 h", "+30 min", "+0 min": how long after entering, in the largest units that say it.
export function elapsedText(seconds, strings) {
  const say = (template, count) => String(template ?? '{count}').replace('{count}', String(count));
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const parts = [];
  if (days) parts.push(say(strings.daysCount, days));
  if (hours) parts.push(say(strings.hoursCount, hours));
  if (minutes || !parts.length) parts.push(say(strings.minutesCount, minutes));
  return `+${parts.join(' ')}`;
}

// The step after or before the current one, staying within the path.
export function stepMove(current, delta, count) {
  if (!count) return 0;
  return Math.min(count - 1, Math.max(0, current + delta));
}

// The step to show when a visited node is clicked: its next visit after the step shown (a loop
// visits a node more than once), else its first. Orders count from 1, steps' indexes from 0.
export function visitAfter(orders, current) {
  const next = orders.find((order) => order - 1 > current);
  return (next ?? orders[0]) - 1;
}
