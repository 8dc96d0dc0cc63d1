import { memo, useEffect, useState } from 'react';
import { handleLabel } from './StepNode.jsx';
import { emptyRule, outputHandles, problemsByField, problemText, ruleProblems } from './model.js';
import RuleBuilder, { ruleBuilderAvailable } from './RuleBuilder.jsx';
import { configProblems, fill, resolve, unwrap } from './schema.js';

// The property filters' operators (docs/rules.md).
const OPERATORS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'between', 'contains', 'in', 'exists', 'not_exists', 'within_last_days', 'before', 'after'];

const UNITS = [
  ['days', 86400],
  ['hours', 3600],
  ['minutes', 60],
];

function bestUnit(seconds) {
  if (typeof seconds !== 'number' || seconds <= 0) return 3600;
  return UNITS.find(([, size]) => seconds % size === 0)?.[1] ?? 60;
}

// A duration in seconds, typed as a number of minutes, hours or days.
export function DurationInput({ id, value, onChange, strings, disabled }) {
  const [unit, setUnit] = useState(() => bestUnit(value));
  const amount = typeof value === 'number' ? value / unit : '';
  return (
    <span className="field__duration">
      <input
        id={id}
        type="number"
        min="0"
        step="any"
        value={amount}
        disabled={disabled}
        onChange={(event) => {
          const text = event.target.value;
          onChange(text === '' ? null : Math.round(Number(text) * unit));
        }}
      />
      <select
        aria-label={`${id}-unit`}
        value={unit}
        disabled={disabled}
        onChange={(event) => {
          const next = Number(event.target.value);
          setUnit(next);
          if (typeof value === 'number') onChange(Math.round((value / unit) * next));
        }}
      >
        {UNITS.map(([name, size]) => (
          <option key={name} value={size}>
            {strings[name]}
          </option>
        ))}
      </select>
    </span>
  );
}

// A rule as JSON text: parsed as it is typed, kept as text while it does not parse.
function JsonInput({ id, value, onChange, strings, disabled, onError }) {
  const [text, setText] = useState(() => JSON.stringify(value ?? {}, null, 1));
  const [error, setError] = useState('');
  useEffect(() => {
    // Undo, or another editor's version, changed the value under us.
    try {
      if (JSON.stringify(JSON.parse(text)) !== JSON.stringify(value ?? {})) setText(JSON.stringify(value ?? {}, null, 1));
    } catch {
      /* the marketer is typing */
    }
  }, [value]); // eslint-disable-line react-hooks/exhaustive-deps -- only a new value replaces the text
  return (
    <>
      <textarea
        id={id}
        rows={4}
        spellCheck={false}
        className="field__json"
        value={text}
        disabled={disabled}
        onChange={(event) => {
          setText(event.target.value);
          try {
            const parsed = JSON.parse(event.target.value);
            if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(strings.notObject);
            setError('');
            onError?.('');
            onChange(parsed);
          } catch (problem) {
            const message = problem instanceof SyntaxError ? fill(strings.badJson, { reason: problem.message }) : problem.message;
            setError(message);
            onError?.(message);
          }
        }}
      />
      {error && (
        <span className="field__error" role="alert">
          {error}
        </span>
      )}
    </>
  );
}

function Options({ items, strings }) {
  return (
    <>
      <option value="">{strings.choose}</option>
      {items.map((item) => (
        <option key={item.value} value={item.value}>
          {item.label}
        </option>
      ))}
    </>
  );
}

function FieldErrors({ messages }) {
  if (!messages?.length) return null;
  return (
    <span className="field__error" role="alert">
      {messages.join(' ')}
    </span>
  );
}

// One config value, its widget chosen by its name (pickers for what the data names) or else by
// its schema.
function Field({ name, path, propertySchema, root, value, onChange, ctx, config }) {
  const { schema, nullable } = unwrap(propertySchema, root);
  const { strings, fieldLabels, enumLabels, options, readOnly, errors } = ctx;
  const id = `field-${path.replaceAll('.', '-')}`;
  const label = fieldLabels[name] ?? schema.title ?? name;
  let messages = errors[path];
  let input;
  // A rule of the rule language is edited in the rule builder, or as JSON by those who prefer.
  const ruleField = name === 'rule' && schema.type === 'object' && ruleBuilderAvailable(ctx.ruleBuilder);
  const asJson = ruleField && ctx.jsonFields.has(path);

  if (name === 'account') {
    input = (
      <select id={id} value={value ?? ''} disabled={readOnly} onChange={(e) => onChange(e.target.value === '' ? null : Number(e.target.value))}>
        <Options strings={strings} items={options.accounts.map((a) => ({ value: a.id, label: `${a.name} (${a.channel})` }))} />
      </select>
    );
  } else if (name === 'template') {
    const account = options.accounts.find((a) => a.id === config.account);
    const templates = account ? options.templates.filter((t) => t.channel === account.channel) : options.templates;
    const chosen = options.templates.find((t) => t.key === value);
    input = (
      <>
        <select id={id} value={value ?? ''} disabled={readOnly} onChange={(e) => onChange(e.target.value || null)}>
          <Options strings={strings} items={templates.map((t) => ({ value: t.key, label: `${t.name} (${t.key})` }))} />
          {chosen && !templates.includes(chosen) && <option value={chosen.key}>{chosen.name}</option>}
        </select>
        {chosen && account && chosen.channel !== account.channel && <FieldErrors messages={[strings.templateOtherChannel]} />}
        {chosen && (
          <details className="field__preview" open>
            <summary>{strings.templatePreview}</summary>
            <pre>{chosen.body?.text ?? chosen.body?.subject ?? JSON.stringify(chosen.body?.fields ?? chosen.body, null, 1)}</pre>
          </details>
        )}
      </>
    );
  } else if (name === 'tag' || name === 'segment' || name === 'event') {
    const items =
      name === 'tag'
        ? options.tags.map((t) => ({ value: t.key, label: t.kind === 'dynamic' ? `${t.name} (${strings.dynamicTag})` : t.name }))
        : name === 'segment'
          ? options.segments.map((s) => ({ value: s.key, label: s.name }))
          : options.events.map((e) => ({ value: e.name, label: e.name }));
    input = (
      <>
        <input id={id} list={`${id}-list`} autoComplete="off" value={value ?? ''} disabled={readOnly} onChange={(e) => onChange(e.target.value)} />
        <datalist id={`${id}-list`}>
          {items.map((item) => (
            <option key={item.value} value={item.value}>
              {item.label}
            </option>
          ))}
        </datalist>
      </>
    );
  } else if (name === 'property' || name === 'op') {
    // A property filter: the event's properties as seen in the data, the rule language's operators.
    const seen = options.events.find((event) => event.name === config.event)?.properties ?? [];
    const items = name === 'property' ? seen.map((property) => property.key) : OPERATORS;
    input = (
      <>
        <input id={id} list={`${id}-list`} autoComplete="off" value={value ?? ''} disabled={readOnly} onChange={(e) => onChange(e.target.value)} />
        <datalist id={`${id}-list`}>
          {items.map((item) => (
            <option key={item} value={item} />
          ))}
        </datalist>
      </>
    );
  } else if (name === 'ends') {
    const handles = ctx.handles.filter((handle) => !ctx.connected.has(handle));
    if (!handles.length && !(value ?? []).length) return null;
    input = (
      <span className="field__checks" id={id}>
        {ctx.handles.map((handle) => (
          <label key={handle} className="field__check">
            <input
              type="checkbox"
              data-end={handle}
              disabled={readOnly || ctx.connected.has(handle)}
              checked={(value ?? []).includes(handle)}
              onChange={(e) => {
                const rest = (value ?? []).filter((h) => h !== handle);
                onChange(e.target.checked ? [...rest, handle] : rest);
              }}
            />
            {handleLabel(handle, config, strings)}
          </label>
        ))}
      </span>
    );
  } else if (schema.enum) {
    input = (
      <select id={id} value={value ?? ''} disabled={readOnly} onChange={(e) => onChange(e.target.value)}>
        {schema.enum.map((option) => (
          <option key={option} value={option}>
            {enumLabels[option] ?? option}
          </option>
        ))}
      </select>
    );
  } else if (schema.type === 'boolean') {
    input = <input id={id} type="checkbox" checked={Boolean(value)} disabled={readOnly} onChange={(e) => onChange(e.target.checked)} />;
  } else if (schema.type === 'integer' && /(^|_)seconds$/.test(name)) {
    input = <DurationInput id={id} value={value} onChange={onChange} strings={strings} disabled={readOnly} />;
  } else if (schema.type === 'integer' || schema.type === 'number') {
    input = (
      <input
        id={id}
        type="number"
        min={schema.minimum}
        max={schema.maximum}
        value={value ?? ''}
        disabled={readOnly}
        onChange={(e) => onChange(e.target.value === '' ? null : Number(e.target.value))}
      />
    );
  } else if (name === 'until_time') {
    input = <input id={id} type="time" value={value ?? ''} disabled={readOnly} onChange={(e) => onChange(e.target.value || null)} />;
  } else if (ruleField && !asJson) {
    input = (
      <RuleBuilder
        id={id}
        labelId={`${id}-label`}
        field={path}
        value={value}
        onChange={onChange}
        serverProblems={ctx.serverProblems}
        readOnly={readOnly}
        config={ctx.ruleBuilder}
      />
    );
    // Those the builder shows at their conditions are not repeated under it.
    const inline = new Set(ruleProblems(ctx.serverProblems, path).map(problemText));
    messages = messages?.filter((message) => !inline.has(message));
  } else if (schema.type === 'object') {
    input = <JsonInput id={id} value={value} onChange={onChange} strings={strings} disabled={readOnly} onError={(message) => ctx.setJsonError(path, message)} />;
  } else if (schema.type === 'array') {
    const itemSchema = resolve(schema.items, root);
    const items = Array.isArray(value) ? value : [];
    const blank = () => {
      if (name === 'branches') {
        const used = new Set(items.map((b) => b.id));
        let number = items.length + 1;
        while (used.has(`b${number}`)) number += 1;
        return { id: `b${number}`, label: '', ...(itemSchema.properties?.rule ? { rule: emptyRule() } : { percent: 0 }) };
      }
      return Object.fromEntries((itemSchema.required ?? []).map((key) => [key, '']));
    };
    input = (
      <div className="field__list" id={id}>
        {items.map((item, index) => (
          <fieldset key={index} className="field__item">
            {Object.entries(itemSchema.properties ?? {}).map(([childName, childSchema]) => (
              <Field
                key={childName}
                name={childName}
                path={`${path}.${index}.${childName}`}
                propertySchema={childSchema}
                root={root}
                value={item?.[childName]}
                config={config}
                ctx={ctx}
                onChange={(childValue) => onChange(items.map((old, i) => (i === index ? { ...old, [childName]: childValue } : old)))}
              />
            ))}
            {!readOnly && (
              <button type="button" className="button button--small" onClick={() => onChange(items.filter((_, i) => i !== index))}>
                {strings.remove}
              </button>
            )}
          </fieldset>
        ))}
        {!readOnly && (schema.maxItems == null || items.length < schema.maxItems) && (
          <button type="button" className="button button--small" data-add={path} onClick={() => onChange([...items, blank()])}>
            {strings.add}
          </button>
        )}
      </div>
    );
  } else {
    input = (
      <input
        id={id}
        type="text"
        value={value ?? ''}
        maxLength={schema.maxLength}
        disabled={readOnly}
        onChange={(e) => onChange(e.target.value === '' && nullable ? null : e.target.value)}
      />
    );
  }

  const labelElement = (
    <label htmlFor={id} id={`${id}-label`} className="field__label">
      {label}
    </label>
  );
  return (
    <div className={`field${messages?.length ? ' field--invalid' : ''}${ruleField ? ' field--rule' : ''}`} data-field={path}>
      {ruleField ? (
        <span className="field__label-row">
          {labelElement}
          <button
            type="button"
            className="link-button field__mode"
            data-rule-mode={asJson ? 'builder' : 'json'}
            onClick={() => ctx.setJsonField(path, !asJson)}
          >
            {asJson ? strings.editWithBuilder : strings.editAsJson}
          </button>
        </span>
      ) : (
        labelElement
      )}
      {input}
      {schema.description && !fieldLabels[name] && <span className="field__help muted">{schema.description}</span>}
      <FieldErrors messages={messages} />
    </div>
  );
}

// Memoised, and given the step's id and data rather than the step: dragging a step changes its
// position on every frame, which the panel does not show.
function ConfigPanel({
  nodeId,
  data,
  nodeType,
  targets,
  outgoing,
  typesByKey,
  options,
  strings,
  fieldLabels,
  enumLabels,
  serverProblems,
  ruleBuilder,
  readOnly,
  onConfig,
  onConnect,
  onSeal,
}) {
  // Kept while one step is shown: the editor gives each step a panel of its own.
  const [jsonErrors, setJsonErrors] = useState({});
  const [jsonFields, setJsonFields] = useState(() => new Set());
  if (!nodeId) {
    return (
      <aside className="panel" aria-label={strings.config}>
        <p className="muted">{strings.selectHint}</p>
      </aside>
    );
  }
  const node = { id: nodeId, data };
  const config = data.config ?? {};
  const schema = nodeType?.config_schema ?? { properties: {} };
  const handles = outputHandles(nodeType, config);
  const connected = new Set(outgoing.map((edge) => edge.sourceHandle));
  const server = problemsByField(serverProblems);
  const local = configProblems(config, schema, strings);
  const errors = { ...server };
  for (const [path, messages] of Object.entries(local)) errors[path] = [...new Set([...(errors[path] ?? []), ...messages])];
  for (const [path, message] of Object.entries(jsonErrors)) if (message) errors[path] = [message];
  const ctx = {
    strings,
    fieldLabels,
    enumLabels,
    options,
    readOnly,
    errors,
    handles,
    connected,
    setJsonError: (path, message) => setJsonErrors((old) => ({ ...old, [path]: message })),
    serverProblems,
    ruleBuilder,
    jsonFields,
    setJsonField: (path, on) => {
      setJsonFields((old) => {
        const next = new Set(old);
        if (on) next.add(path);
        else next.delete(path);
        return next;
      });
      // Text left unparsed is dropped with the JSON editor: the builder shows the last valid rule.
      if (!on) setJsonErrors((old) => ({ ...old, [path]: '' }));
    },
  };
  const choices = targets.filter((other) => other.id !== node.id && typesByKey[other.nodeType]?.kind !== 'trigger');

  return (
    <aside className="panel" aria-label={strings.config} data-panel-node={node.id} onBlur={onSeal}>
      <h2 className="panel__title">{nodeType?.label ?? node.data.nodeType}</h2>
      <p className="muted panel__id">
        {strings.nodeId}: <code>{node.id}</code>
      </p>
      {(errors[''] ?? []).length > 0 && <FieldErrors messages={errors['']} />}
      {Object.entries(schema.properties ?? {}).map(([name, property]) => (
        <Field
          key={`${node.id}-${name}`}
          name={name}
          path={name}
          propertySchema={property}
          root={schema}
          value={config[name]}
          config={config}
          ctx={ctx}
          onChange={(value) => onConfig(node.id, { ...config, [name]: value === null ? undefined : value }, `${node.id}:${name}`)}
        />
      ))}
      {handles.length > 0 && (
        <section className="panel__connections">
          <h3>{strings.connections}</h3>
          {handles.map((handle) => {
            const edge = outgoing.find((e) => e.sourceHandle === handle);
            return (
              <div className="field" key={handle}>
                <label className="field__label" htmlFor={`connect-${handle}`}>
                  {handleLabel(handle, config, strings)} → {strings.connectTo}
                </label>
                <select
                  id={`connect-${handle}`}
                  data-connect={handle}
                  value={edge?.target ?? ''}
                  disabled={readOnly}
                  onChange={(e) => onConnect(node.id, handle, e.target.value || null)}
                >
                  <option value="">{strings.nowhere}</option>
                  {choices.map((other) => (
                    <option key={other.id} value={other.id}>
                      {other.name} ({other.id})
                    </option>
                  ))}
                </select>
              </div>
            );
          })}
        </section>
      )}
    </aside>
  );
}

export default memo(ConfigPanel);
