// Reading the node types' config schemas (pydantic's model_json_schema): references into $defs,
// optional values (anyOf with null), and the checks the panel runs as the marketer types, with the
// same bounds the server enforces.

export function resolve(schema, root) {
  if (schema?.$ref) {
    const name = schema.$ref.replace('#/$defs/', '');
    return { ...(root?.$defs?.[name] ?? {}), ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$ref')) };
  }
  return schema ?? {};
}

// {schema, nullable}: an `anyOf: [X, {type: null}]` is X that may be left empty.
export function unwrap(schema, root) {
  const resolved = resolve(schema, root);
  if (Array.isArray(resolved.anyOf)) {
    const others = resolved.anyOf.filter((option) => option.type !== 'null');
    if (others.length === 1) {
      const { anyOf: _anyOf, ...rest } = resolved;
      return { schema: { ...rest, ...resolve(others[0], root) }, nullable: others.length < resolved.anyOf.length };
    }
  }
  return { schema: resolved, nullable: false };
}

export function fill(template, values) {
  return String(template ?? '').replace(/\{(\w+)\}/g, (match, key) => (key in values ? String(values[key]) : match));
}

// The branch a problem is about (a condition's or a split's, from its field "config.branches.2.rule"),
// named as its handle on the canvas (label, else id; "branch 3" if the step no longer has it); null
// when the problem is about the step as a whole.
export function problemBranch(problem, config, strings) {
  const found = /^config\.branches\.(\d+)(\.|$)/.exec(problem?.field ?? '');
  if (!found) return null;
  const index = Number(found[1]);
  const branch = config?.branches?.[index];
  return branch ? branch.label || branch.id : fill(strings.branchNumber, { number: index + 1 });
}

function isEmpty(value) {
  return value === undefined || value === null || value === '';
}

// The problems of one value against its schema, as translated messages. `path` names the field
// for nested problems ("branches.0.id").
export function valueProblems(value, propertySchema, root, strings, { required = false, path = '' } = {}) {
  const { schema, nullable } = unwrap(propertySchema, root);
  const problems = [];
  const add = (message) => problems.push({ path, message });
  if (isEmpty(value)) {
    if (required && !nullable && schema.default === undefined) add(strings.required);
    return problems;
  }
  const type = schema.type;
  if (type === 'integer' || type === 'number') {
    if (typeof value !== 'number' || Number.isNaN(value) || (type === 'integer' && !Number.isInteger(value))) {
      add(strings.notNumber);
      return problems;
    }
    if (schema.minimum != null && value < schema.minimum) add(fill(strings.min, { value: schema.minimum }));
    if (schema.maximum != null && value > schema.maximum) add(fill(strings.max, { value: schema.maximum }));
  } else if (type === 'string') {
    const text = String(value);
    if (schema.minLength != null && text.length < schema.minLength) add(strings.tooShort);
    if (schema.maxLength != null && text.length > schema.maxLength) add(fill(strings.tooLong, { count: schema.maxLength }));
    if (schema.pattern && !new RegExp(schema.pattern).test(text)) add(strings.pattern);
  } else if (type === 'object') {
    if (typeof value !== 'object' || Array.isArray(value)) add(strings.notObject);
    else problems.push(...objectProblems(value, schema, root, strings, path));
  } else if (type === 'array') {
    if (!Array.isArray(value)) return problems;
    if (schema.minItems != null && value.length < schema.minItems) add(fill(strings.tooFew, { count: schema.minItems }));
    if (schema.maxItems != null && value.length > schema.maxItems) add(fill(strings.tooMany, { count: schema.maxItems }));
    value.forEach((item, index) => {
      problems.push(...valueProblems(item, schema.items, root, strings, { required: true, path: `${path}.${index}` }));
    });
  }
  return problems;
}

export function objectProblems(value, schema, root, strings, path = '') {
  const problems = [];
  const required = new Set(schema.required ?? []);
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const childPath = path ? `${path}.${name}` : name;
    problems.push(
      ...valueProblems(value?.[name], property, root, strings, { required: required.has(name), path: childPath }),
    );
  }
  return problems;
}

// A node's config problems by field path, as the panel shows them beside each field.
export function configProblems(config, configSchema, strings) {
  const byPath = {};
  for (const problem of objectProblems(config ?? {}, configSchema ?? {}, configSchema, strings)) {
    (byPath[problem.path] ??= []).push(problem.message);
  }
  return byPath;
}
