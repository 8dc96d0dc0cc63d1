import { memo } from 'react';
import { Handle, Position } from '@xyflow/react';
import { useEditor } from './EditorContext.js';
import { iconGlyph } from './icons.js';
import { nodeSummary, outputHandles } from './model.js';
import { fill } from './schema.js';

export function handleLabel(handle, config, strings) {
  const branch = (config?.branches ?? []).find((b) => b?.id === handle);
  if (branch) return branch.label || branch.id;
  return strings[`handle.${handle}`] ?? handle;
}

function StepNode({ id, data, selected }) {
  const { typesByKey, strings, names, problems, counts, urls, mode, testRun } = useEditor();
  const nodeType = typesByKey[data.nodeType];
  const kind = nodeType?.kind ?? 'action';
  const handles = outputHandles(nodeType, data.config);
  const ends = new Set(data.config?.ends ?? []);
  const nodeProblems = problems.get(id) ?? [];
  const summary = nodeSummary(data.nodeType, data.config, { strings, names });
  const count = counts?.[id];
  const title = data.config?.label || nodeType?.label || data.nodeType;
  // On a test run's path: the visit numbers, the handles left by, where the customer ended.
  const visit = testRun?.nodes.get(id);
  const taken = new Set(visit?.handles ?? []);
  const endedHere = testRun?.ending?.node === id ? testRun.ending.kind.split('-')[0] : null;
  const testClass = !testRun
    ? ''
    : visit
      ? ` step--visited${testRun.current === id ? ' step--current' : ''}`
      : ' step--dimmed';
  return (
    <div
      className={`step step--${kind}${nodeProblems.length ? ' step--problem' : ''}${selected ? ' step--selected' : ''}${testClass}`}
      data-node-id={id}
      data-node-type={data.nodeType}
      data-problems={nodeProblems.length}
      data-test-visits={visit ? visit.orders.join(' ') : undefined}
    >
      {visit && (
        <span className="step__order" aria-label={fill(strings.testOrder, { orders: visit.orders.join(', ') })}>
          {visit.orders.join(' · ')}
        </span>
      )}
      {kind !== 'trigger' && <Handle type="target" position={Position.Left} className="step__in" />}
      <div className="step__head">
        <span className="step__icon" aria-hidden="true">
          {iconGlyph(nodeType?.icon)}
        </span>
        <span className="step__title">{title}</span>
        {nodeProblems.length > 0 && (
          <span className="step__problems" title={nodeProblems.map((p) => p.message).join('\n')}>
            {nodeProblems.length}
          </span>
        )}
      </div>
      {data.config?.label && <div className="step__kind">{nodeType?.label ?? data.nodeType}</div>}
      {summary && <div className="step__summary">{summary}</div>}
      {nodeProblems.length > 0 && <div className="step__problem-text">{nodeProblems[0].message}</div>}
      {endedHere && (
        <div className={`step__ended step__ended--${endedHere}`} data-test-ended={endedHere}>
          {strings[`testHere.${endedHere}`]}
          {endedHere === 'waiting' && testRun.ending.events?.length ? `: ${testRun.ending.events.join(', ')}` : ''}
        </div>
      )}
      {mode === 'live' && (
        <div className="step__counts" data-counts>
          <span data-count="entered">
            {count?.entered ?? 0} {strings.entered}
          </span>
          {' · '}
          <a className="nodrag" href={urls.nodeCustomers.replace('NODE', encodeURIComponent(id))} data-count="waiting">
            {fill(strings.waitingLink, { count: count?.waiting ?? 0 })}
          </a>
        </div>
      )}
      {handles.length > 0 && (
        <ul className="step__outs">
          {handles.map((handle) => (
            <li key={handle} className={`step__out${taken.has(handle) ? ' step__out--taken' : ''}`} data-handle={handle}>
              <span className={ends.has(handle) ? 'step__out-label step__out-label--end' : 'step__out-label'}>
                {handleLabel(handle, data.config, strings)}
                {mode === 'live' && count?.left?.[handle] ? ` ${count.left[handle]}` : ''}
              </span>
              <Handle type="source" position={Position.Right} id={handle} className="step__handle" />
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export default memo(StepNode);
