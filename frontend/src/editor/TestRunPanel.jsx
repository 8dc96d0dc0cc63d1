import { useEffect, useId, useMemo, useRef, useState } from 'react';
import { api, apiRows, ApiError } from './api.js';
import { fill } from './schema.js';
import { handleLabel } from './StepNode.jsx';
import { elapsedText, END_OUTCOME, stepDecision } from './testRun.js';

// The test run beside the canvas: the customer to run the draft for (searched as the customers
// API searches: a whole phone number or email, the start of a name, or #id), optionally something
// they do on the way, then the path step by step, each step's decision, time on the simulated
// clock, sandbox messages and tasks, and where the customer ended. The canvas draws the same path.

const SEARCH_DELAY_MS = 250;
const SHOWN_CUSTOMERS = 8;
const ENDING_TONES = { failed: 'failed', exited: 'exited' };

async function customersFind(url, query) {
  const id = /^#(\d+)$/.exec(query.trim());
  if (id) {
    try {
      return [await api(`${url}${id[1]}/`)];
    } catch {
      return [];
    }
  }
  return apiRows(`${url}?q=${encodeURIComponent(query.trim())}`);
}

function CustomerPicker({ strings, url, chosen, onChoose, error, afterChoosing }) {
  const [query, setQuery] = useState('');
  const [found, setFound] = useState({ query: null, customers: [] });
  const [active, setActive] = useState(0);
  const asked = useRef(0);
  const listId = useId();

  useEffect(() => {
    if (chosen) return undefined;
    const ask = (asked.current += 1);
    const timer = setTimeout(
      async () => {
        const customers = await customersFind(url, query);
        // An older answer arriving after a newer question is dropped.
        if (ask !== asked.current) return;
        setFound({ query, customers: customers.slice(0, SHOWN_CUSTOMERS) });
        setActive(0);
      },
      query ? SEARCH_DELAY_MS : 0,
    );
    return () => clearTimeout(timer);
  }, [query, chosen, url]);

  const choose = (customer) => {
    onChoose(customer);
    setQuery('');
    afterChoosing();
  };

  if (chosen) {
    return (
      <div className="field" data-field="customer">
        <span className="field__label">{strings.testCustomer}</span>
        <div className="test-customer" data-test-customer={chosen.id}>
          <span className="test-customer__name">{chosen.name || strings.testUnnamed}</span>
          <span className="muted">{[chosen.phone, `#${chosen.id}`].filter(Boolean).join(' · ')}</span>
          <button type="button" className="button button--small" onClick={() => onChoose(null)}>
            {strings.testChangeCustomer}
          </button>
        </div>
        {error && <span className="field__error">{error}</span>}
      </div>
    );
  }
  const customers = found.customers;
  const searching = found.query !== query;
  const optionId = (customer) => `${listId}-${customer.id}`;
  const onKeyDown = (event) => {
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const step = event.key === 'ArrowDown' ? 1 : -1;
      setActive((index) => Math.min(customers.length - 1, Math.max(0, index + step)));
    } else if (event.key === 'Enter' && customers[active]) {
      event.preventDefault();
      choose(customers[active]);
    }
  };
  return (
    <div className={`field${error ? ' field--invalid' : ''}`} data-field="customer">
      <label className="field__label" htmlFor="test-customer">
        {strings.testCustomer}
      </label>
      <input
        id="test-customer"
        type="search"
        role="combobox"
        autoComplete="off"
        aria-autocomplete="list"
        aria-expanded={customers.length > 0}
        aria-controls={listId}
        aria-activedescendant={customers[active] ? optionId(customers[active]) : undefined}
        placeholder={strings.testCustomerPlaceholder}
        value={query}
        onChange={(event) => setQuery(event.target.value)}
        onKeyDown={onKeyDown}
        // Opening the panel, or choosing another customer, goes on where the typing is.
        autoFocus
      />
      <span className="field__help muted" aria-live="polite">
        {searching ? strings.testSearching : customers.length ? (query.trim() ? strings.testMatches : strings.testRecent) : strings.testNoCustomer}
      </span>
      <ul id={listId} role="listbox" aria-label={strings.testCustomer} className="test-options">
        {customers.map((customer, index) => (
          <li
            key={customer.id}
            id={optionId(customer)}
            role="option"
            aria-selected={index === active}
            className={`test-option${index === active ? ' test-option--active' : ''}`}
            data-customer-option={customer.id}
            // Chosen before the input loses focus to the click.
            onMouseDown={(event) => {
              event.preventDefault();
              choose(customer);
            }}
            onMouseEnter={() => setActive(index)}
          >
            <span className="test-option__name">{customer.name || strings.testUnnamed}</span>
            <span className="muted">{[customer.phone, `#${customer.id}`].filter(Boolean).join(' · ')}</span>
          </li>
        ))}
      </ul>
      {error && <span className="field__error">{error}</span>}
    </div>
  );
}

function fieldErrors(error) {
  if (!(error instanceof ApiError) || error.status !== 400 || !error.body || typeof error.body !== 'object') return null;
  const flat = (value) =>
    Array.isArray(value) ? value.map(flat).join(' ') : value && typeof value === 'object' ? Object.values(value).map(flat).join(' ') : String(value ?? '');
  return Object.fromEntries(Object.entries(error.body).map(([field, messages]) => [field, flat(messages).trim()]));
}

function StepDetail({ step, strings, nodeType, config, names, statuses, taskStatuses, channels }) {
  const decision = stepDecision(step, nodeType?.kind);
  const handleName = (handle) => handleLabel(handle, config, strings);
  const why = decision
    ? fill(strings[decision.key], {
        branch: handleName(decision.handle ?? step.outcome),
        bucket: decision.bucket,
        status: statuses[decision.status] ?? decision.status,
        ...decision.values,
      })
    : step.reason;
  const left = !step.outcome ? strings.testWaitingHere : step.outcome === END_OUTCOME ? strings.testEndedHere : handleName(step.outcome);
  const clock = new Date(step.entered_at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  return (
    <dl className="test-detail" data-test-detail>
      <dt>{strings.testLeftBy}</dt>
      <dd data-test-left-by>{left}</dd>
      <dt>{strings.testWhy}</dt>
      <dd data-test-reason>{why || '—'}</dd>
      <dt>{strings.testClock}</dt>
      <dd>
        {clock} <span className="muted">({elapsedText(step.afterSeconds, strings)})</span>
      </dd>
      {step.messages.length > 0 && (
        <>
          <dt>{strings.testMessages}</dt>
          <dd>
            <ul className="test-detail__list" data-test-messages>
              {step.messages.map((message, index) => (
                <li key={index} data-status={message.status}>
                  {channels[message.channel] ?? message.channel}
                  {message.template ? ` · ${names.templates[message.template] ?? message.template}` : ''}:{' '}
                  <span className={`test-status test-status--${message.status}`}>{statuses[message.status] ?? message.status}</span>
                  {message.reason && <span className="muted"> — {message.reason}</span>}
                </li>
              ))}
            </ul>
          </dd>
        </>
      )}
      {step.tasks.length > 0 && (
        <>
          <dt>{strings.testTasks}</dt>
          <dd>
            <ul className="test-detail__list">
              {step.tasks.map((task, index) => (
                <li key={index}>
                  {task.title}
                  {task.assignee ? ` → ${task.assignee}` : ''} <span className="muted">({taskStatuses[task.status] ?? task.status})</span>
                </li>
              ))}
            </ul>
          </dd>
        </>
      )}
    </dl>
  );
}

function endingText(ending, strings, stepName, handleName) {
  const template = strings[`testEnd.${ending.kind}`] ?? ending.kind;
  return fill(template, {
    events: (ending.events ?? []).map((event) => `“${event}”`).join(', '),
    handle: ending.handle ? handleName(ending.node, ending.handle) : '',
    reason: ending.reason ?? '',
    step: stepName(ending.node),
  });
}

export default function TestRunPanel({
  strings,
  urls,
  triggers,
  awaitedEvents,
  knownEvents,
  path,
  report,
  problemCount,
  current,
  onSelect,
  onRun,
  onClear,
  onClose,
  stepName,
  nodeOf,
  typesByKey,
  names,
  statuses,
  taskStatuses,
  channels,
}) {
  const [customer, setCustomer] = useState(null);
  const [eventName, setEventName] = useState('');
  const [afterMinutes, setAfterMinutes] = useState('');
  const [trigger, setTrigger] = useState('');
  const [running, setRunning] = useState(false);
  const [errors, setErrors] = useState({});
  const runButton = useRef(null);
  const currentItem = useRef(null);
  const eventsId = useId();
  const suggestions = useMemo(() => [...new Set([...awaitedEvents, ...knownEvents])], [awaitedEvents, knownEvents]);

  useEffect(() => {
    currentItem.current?.scrollIntoView?.({ block: 'nearest' });
  }, [current, report]);

  const run = async (event) => {
    event.preventDefault();
    if (!customer) {
      setErrors({ customer_id: strings.testChooseCustomer });
      return;
    }
    const minutes = Number(afterMinutes);
    const afterSeconds = Number.isFinite(minutes) ? Math.max(0, Math.round(minutes * 60)) : 0;
    const events = eventName.trim() ? [{ name: eventName.trim(), after_seconds: afterSeconds }] : [];
    setErrors({});
    setRunning(true);
    try {
      await onRun({ customer_id: customer.id, trigger, events });
    } catch (error) {
      const byField = fieldErrors(error);
      if (byField) setErrors(byField);
      else setErrors({ run: fill(strings.testFailed, { reason: error.message }) });
    } finally {
      setRunning(false);
    }
  };

  const ending = path?.ending;
  const steps = path?.steps ?? [];
  const handleName = (nodeId, handle) => handleLabel(handle, nodeOf(nodeId)?.data.config, strings);
  const tone = !ending ? '' : ending.kind.startsWith('completed') ? 'done' : (ENDING_TONES[ending.kind] ?? 'waiting');
  // What the API refused beyond the fields shown with their own errors.
  const otherErrors = Object.entries(errors)
    .filter(([field, message]) => message && !['customer_id', 'trigger', 'events'].includes(field))
    .map(([, message]) => message)
    .join(' ');
  const lastStep = steps.at(-1);

  return (
    <aside className="panel test-panel" aria-labelledby="test-panel-title" data-test-panel>
      <div className="test-panel__head">
        <h2 className="panel__title" id="test-panel-title">
          {strings.testRun}
        </h2>
        <button type="button" className="button button--small test-panel__close" onClick={onClose} aria-label={strings.testClose} title={strings.testClose}>
          ×
        </button>
      </div>
      <p className="muted test-panel__explain">{strings.testExplain}</p>

      <form className="test-form" onSubmit={run} noValidate>
        <CustomerPicker
          strings={strings}
          url={urls.customers}
          chosen={customer}
          onChoose={(chosen) => {
            setCustomer(chosen);
            setErrors((old) => ({ ...old, customer_id: undefined }));
          }}
          afterChoosing={() => setTimeout(() => runButton.current?.focus())}
          error={errors.customer_id}
        />
        {triggers.length > 1 && (
          <div className={`field${errors.trigger ? ' field--invalid' : ''}`}>
            <label className="field__label" htmlFor="test-trigger">
              {strings.testTrigger}
            </label>
            <select id="test-trigger" value={trigger || triggers[0].id} onChange={(e) => setTrigger(e.target.value)}>
              {triggers.map((t) => (
                <option key={t.id} value={t.id}>
                  {t.name}
                </option>
              ))}
            </select>
            {errors.trigger && <span className="field__error">{errors.trigger}</span>}
          </div>
        )}
        <details className="test-form__more" open={Boolean(eventName) || Boolean(errors.events)}>
          <summary>{strings.testOnTheWay}</summary>
          <div className="test-form__event">
            <div className="field">
              <label className="field__label" htmlFor="test-event">
                {strings.testEvent}
              </label>
              <input id="test-event" list={eventsId} autoComplete="off" value={eventName} onChange={(e) => setEventName(e.target.value)} />
              <datalist id={eventsId}>
                {suggestions.map((name) => (
                  <option key={name} value={name} />
                ))}
              </datalist>
            </div>
            <div className="field">
              <label className="field__label" htmlFor="test-after">
                {strings.testAfterMinutes}
              </label>
              <input id="test-after" type="number" min="0" step="1" placeholder="30" value={afterMinutes} onChange={(e) => setAfterMinutes(e.target.value)} />
            </div>
          </div>
          {errors.events && <span className="field__error">{errors.events}</span>}
        </details>
        {otherErrors && (
          <p className="field__error" role="alert">
            {otherErrors}
          </p>
        )}
        <button type="submit" className="button button--primary test-form__run" ref={runButton} disabled={running} data-test-start>
          {running ? strings.testRunning : strings.testStart}
        </button>
      </form>

      {report && ending && (
        <section className="test-result" aria-labelledby="test-steps-title">
          <div className={`test-ending test-ending--${tone}`} role="status" data-test-ending={ending.kind}>
            <strong>{endingText(ending, strings, stepName, handleName)}</strong>
            {lastStep && <span>{fill(strings.testEndAt, { step: stepName(lastStep.node), elapsed: elapsedText(lastStep.afterSeconds, strings) })}</span>}
            <span className="muted">{fill(strings.testMessageCount, { count: report.messages.length })}</span>
            {problemCount > 0 && <span className="test-ending__problems">{fill(strings.testProblems, { count: problemCount })}</span>}
          </div>

          <h3 className="test-result__title" id="test-steps-title">
            {strings.testSteps}
          </h3>
          {/* aria-disabled rather than disabled at either end: the button keeps the keyboard's focus. */}
          <div className="test-nav">
            <button type="button" className="button button--small" onClick={() => onSelect(current - 1)} aria-disabled={current <= 0} data-test-previous>
              ← {strings.testPrevious}
            </button>
            <span className="test-nav__position muted" aria-live="polite">
              {fill(strings.testStepOf, { number: current + 1, count: steps.length })}
            </span>
            <button type="button" className="button button--small" onClick={() => onSelect(current + 1)} aria-disabled={current >= steps.length - 1} data-test-next>
              {strings.testNext} →
            </button>
          </div>

          <ol className="test-steps">
            {steps.map((step, index) => {
              const node = nodeOf(step.node);
              const nodeType = typesByKey[node?.data.nodeType ?? step.type];
              const isCurrent = index === current;
              return (
                <li key={step.order} className={`test-steps__item${isCurrent ? ' test-steps__item--current' : ''}`} data-test-step={step.order} data-node={step.node} ref={isCurrent ? currentItem : undefined}>
                  <button type="button" className="test-step" aria-current={isCurrent ? 'step' : undefined} aria-expanded={isCurrent} onClick={() => onSelect(index)}>
                    <span className="test-step__order">{step.order}</span>
                    <span className="test-step__name">
                      {stepName(step.node)}
                      <span className="test-step__kind muted">{nodeType?.label ?? step.type}</span>
                    </span>
                    <span className="test-step__time muted">{elapsedText(step.afterSeconds, strings)}</span>
                  </button>
                  {isCurrent && (
                    <StepDetail
                      step={step}
                      strings={strings}
                      nodeType={nodeType}
                      config={node?.data.config}
                      names={names}
                      statuses={statuses}
                      taskStatuses={taskStatuses}
                      channels={channels}
                    />
                  )}
                </li>
              );
            })}
          </ol>
          <div className="test-actions">
            <button type="button" className="button" onClick={onClear} data-test-clear>
              {strings.testClear}
            </button>
            <a href={urls.testPage} className="test-actions__page">
              {strings.testPage}
            </a>
          </div>
        </section>
      )}
      {!report && (
        <p className="test-actions">
          <a href={urls.testPage} className="test-actions__page">
            {strings.testPage}
          </a>
        </p>
      )}
    </aside>
  );
}
