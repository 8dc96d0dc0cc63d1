// The rule builder: edits a rule tree of the rule language (docs/rules.md) inside any element, for
// whichever page holds it (the segment pages, the journey canvas's condition steps). Groups (all /
// any, negated with "not") nest to any depth; conditions are edited by the editor their kind names
// in the server's table (segments/builder.py): "event" and "comparison" below, or "fields" for kinds
// described by their fields alone. Every word shown comes from the server, translated.
//
//   const builder = window.CdpRuleBuilder.mount(element, { config, rule, onChange, problems, readOnly });
//   builder.update({ rule, problems });   // a rule changed elsewhere (undo), problems found by the server
//   builder.rule;                          // the rule as edited (a copy)
//   builder.destroy();
//
// `config` is segments.builder.builder_config(); `onChange(rule)` is called with a copy of the rule
// after each edit by the marketer (never when mounting or updating); `problems` are the server's,
// each {path, message} with the JSON path of the condition it is about.
(function () {
  "use strict";

  // -------------------------------------------------------------------------------------------
  // The tree

  const isGroup = (node) => node && typeof node === "object" && (Array.isArray(node.and) || Array.isArray(node.or));
  const isNot = (node) => node && typeof node === "object" && Object.keys(node).length === 1 && "not" in node;
  const groupOp = (node) => (Array.isArray(node.and) ? "and" : "or");
  const clone = (value) => JSON.parse(JSON.stringify(value));
  const hasCondition = (node) => {
    if (isNot(node)) return hasCondition(node.not);
    if (isGroup(node)) return node[groupOp(node)].some(hasCondition);
    return Boolean(node);
  };

  // The builder edits a group at its root: a single condition becomes the only one of an "all".
  function toTree(value) {
    if (!value || typeof value !== "object" || Array.isArray(value) || !Object.keys(value).length) return { tree: { and: [] }, wrapped: false };
    return isGroup(value) ? { tree: clone(value), wrapped: false } : { tree: { and: [clone(value)] }, wrapped: true };
  }

  // A problem's JSON path in the tree as drawn: a holder's single condition is drawn as the only
  // one of a group.
  const drawnPath = (path, wrapped) => (wrapped ? String(path || "$").replace(/^\$/, () => "$.and[0]") : path || "$");

  // The nearest drawn node for a JSON path: the condition itself, or the condition or group that
  // holds the part it names ("$.and[1].count.value" -> "$.and[1]"); else the root.
  function nearestPath(path, drawn) {
    let current = path;
    while (current) {
      if (drawn.has(current)) return current;
      const shorter = current.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
      if (shorter === current) break;
      current = shorter;
    }
    return "$";
  }

  function getPath(object, path) {
    return path.reduce((value, key) => (value == null ? undefined : value[key]), object);
  }
  function setPath(object, path, value) {
    let target = object;
    for (const key of path.slice(0, -1)) {
      if (typeof target[key] !== "object" || target[key] === null) target[key] = {};
      target = target[key];
    }
    target[path[path.length - 1]] = value;
  }

  // -------------------------------------------------------------------------------------------
  // Small DOM helpers

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name in node && name !== "list") node[name] = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }
  const words = (text) => el("span", { class: "rule-words" }, text);

  function select(options, value, onChange, { placeholder, label } = {}) {
    const node = el("select", { "aria-label": label });
    if (placeholder) node.append(el("option", { value: "" }, placeholder));
    const known = options.map(([optionValue]) => String(optionValue));
    if (value !== undefined && value !== null && value !== "" && !known.includes(String(value))) {
      node.append(el("option", { value: String(value) }, String(value)));
    }
    for (const [optionValue, optionLabel] of options) {
      node.append(el("option", { value: String(optionValue) }, optionLabel));
    }
    node.value = value === undefined || value === null ? "" : String(value);
    node.addEventListener("change", () => onChange(node.value));
    return node;
  }

  function input(type, value, onInput, attributes = {}) {
    const node = el("input", { type, ...attributes });
    node.value = value === undefined || value === null ? "" : String(value);
    node.addEventListener("input", () => onInput(node.value, node));
    return node;
  }

  // One <datalist> per list of suggestions, made once and shared by every builder of the page.
  function datalist(id, values) {
    let list = document.getElementById(id);
    if (!list) {
      list = el("datalist", { id });
      document.body.append(list);
    }
    list.replaceChildren(...values.map((value) => el("option", { value: String(value) })));
    return id;
  }
  const listId = (name) => "vocabulary-" + name.replace(/[^a-zA-Z0-9_-]/g, "_");

  // -------------------------------------------------------------------------------------------
  // Values typed as text, read as what they look like

  function typed(text, kind) {
    if (kind === "number") {
      const value = Number(text);
      return text.trim() !== "" && Number.isFinite(value) ? value : text;
    }
    if (kind === "boolean") return text === "true";
    return text;
  }
  const looksNumeric = (text) => String(text).trim() !== "" && Number.isFinite(Number(text));
  const orderable = (text) => (looksNumeric(text) ? Number(text) : text);

  // After an operator changes, keep what still fits and give the rest a sensible start.
  function fitValue(test) {
    const value = test.value;
    switch (test.op) {
      case "exists": case "not_exists": delete test.value; break;
      case "between": test.value = Array.isArray(value) && value.length === 2 ? value : [value ?? "", ""]; break;
      case "in": test.value = Array.isArray(value) ? value : value === undefined || value === "" ? [] : [value]; break;
      case "within_last_days": test.value = Number.isInteger(value) && value > 0 ? value : 30; break;
      case "before": case "after":
        test.value = typeof value === "string" && /^\d{4}-\d{2}-\d{2}$/.test(value) ? value : value && value.days_ago !== undefined ? value : { days_ago: 30 };
        break;
      default: test.value = Array.isArray(value) ? value[0] ?? "" : value && typeof value === "object" ? "" : value ?? "";
    }
  }

  function today(offsetDays = 0) {
    const date = new Date(Date.now() - offsetDays * 86400000);
    return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
  }

  // -------------------------------------------------------------------------------------------
  // The vocabulary (events, traits, tags, segments, ...), fetched once per page for every builder

  const EMPTY_VOCABULARY = { events: [], traits: [], tags: [], segments: [], roles: [], consent_channels: [], stages: [] };
  const vocabularies = new Map(); // URL -> promise of the vocabulary
  const loadedVocabularies = new Map(); // URL -> the vocabulary, for builders mounted after it came

  function vocabularyLoad(url) {
    if (!url) return Promise.resolve(null);
    if (!vocabularies.has(url)) {
      const loading = fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then((response) => (response.ok ? response.json() : null))
        .catch(() => null)
        .then((loaded) => {
          if (loaded) loadedVocabularies.set(url, { ...EMPTY_VOCABULARY, ...loaded });
          else vocabularies.delete(url); // tried again by the next builder mounted
          return loadedVocabularies.get(url) || null;
        });
      vocabularies.set(url, loading);
    }
    return vocabularies.get(url);
  }

  let uid = 0; // suggestion lists of values, one per comparison editor, unique across builders
  const valueKinds = new WeakMap(); // comparison -> "text" | "number" | "boolean", as the marketer chose

  // -------------------------------------------------------------------------------------------
  // One builder

  function mount(element, { config, rule: initialRule, onChange = () => {}, problems: initialProblems = [], readOnly = false }) {
    const L = config.labels;
    const KINDS = Object.fromEntries(config.kinds.map((kind) => [kind.key, kind]));
    const kindOf = (leaf) => Object.keys(leaf || {}).find((key) => key in KINDS);

    let { tree: rule, wrapped } = toTree(initialRule);
    // The rule as its holder knows it: an update with the same rule is not drawn again (which
    // would take the caret from the input being typed into).
    let known = JSON.stringify(initialRule ?? null);
    let problems = initialProblems || [];
    let vocabulary = loadedVocabularies.get(config.vocabularyUrl) || EMPTY_VOCABULARY;
    let paths = new Map(); // JSON path -> element showing that node's problems
    let ownLists = []; // the value suggestion lists this builder made
    let destroyed = false;

    function options(name) {
      return (vocabulary[name] || []).map((item) =>
        typeof item === "string" ? [item, item] : [item.key, item.name && item.name !== item.key ? `${item.name} (${item.key})` : item.key]
      );
    }

    function valueList(id, values) {
      if (!ownLists.includes(id)) ownLists.push(id);
      return datalist(id, values);
    }
    function removeValueLists() {
      for (const id of ownLists) document.getElementById(id)?.remove();
      ownLists = [];
    }

    // The marketer changed the rule.
    function changed() {
      wrapped = false;
      const copy = clone(rule);
      known = JSON.stringify(copy);
      onChange(copy);
    }

    // -----------------------------------------------------------------------------------------
    // Rendering: the whole tree after a change of structure; an input edits its leaf in place.

    function render() {
      paths = new Map();
      removeValueLists();
      const focused = element.contains(document.activeElement) ? document.activeElement : null;
      const focusedPath = focused?.closest?.("[data-path]")?.dataset.path;
      element.replaceChildren(renderGroup(rule, "$", (node) => { rule = node; }, null));
      element.classList.toggle("rule-builder--read-only", readOnly);
      if (readOnly) for (const control of element.querySelectorAll("input, select, button")) control.disabled = true;
      if (focusedPath) element.querySelector(`[data-path="${CSS.escape(focusedPath)}"] input, [data-path="${CSS.escape(focusedPath)}"] select`)?.focus();
      showProblems();
    }

    // A change of structure by the marketer: the problems named the tree as it was, so they go
    // until the holder has checked the new one.
    function restructured() {
      problems = [];
      render();
      changed();
    }

    function register(path, node) {
      paths.set(path, node);
    }

    function toolbar(negated, onNegate, onRemove) {
      const bar = el("span", { class: "rule-tools" });
      if (onNegate) {
        const box = el("input", { type: "checkbox", checked: negated, onchange: onNegate });
        bar.append(el("label", { class: "rule-not", title: L.not_title }, box, L.not));
      }
      if (onRemove) bar.append(el("button", { type: "button", class: "link-button rule-remove", onclick: onRemove, "aria-label": L.remove, title: L.remove }, "×"));
      return bar;
    }

    // An item of a group: a condition or a nested group, possibly wrapped in {"not": ...}.
    function renderItem(node, path, replace, remove) {
      const negated = isNot(node);
      const inner = negated ? node.not : node;
      const innerPath = negated ? `${path}.not` : path;
      const setInner = (next) => replace(negated ? { not: next } : next);
      const negate = () => { replace(negated ? inner : { not: inner }); restructured(); };
      const item = isGroup(inner)
        ? renderGroup(inner, innerPath, setInner, { negated, negate, remove })
        : renderLeaf(inner, innerPath, { negated, negate, remove });
      item.classList.toggle("is-negated", negated);
      register(path, item);
      return el("li", { class: "rule-item" }, item);
    }

    function renderGroup(group, path, replace, item) {
      const op = groupOp(group);
      const children = group[op];
      const box = el("div", { class: "rule-group", "data-path": path });
      const head = el(
        "div",
        { class: "rule-group__head" },
        item ? toolbar(item.negated, item.negate, null) : null,
        words(L.match_prefix),
        select([["and", L.all], ["or", L.any]], op, (value) => { replace({ [value]: children }); restructured(); }, { label: L.match_prefix }),
        words(L.match_suffix),
        item ? toolbar(false, null, item.remove) : null
      );
      const list = el("ol", { class: "rule-group__items" });
      children.forEach((child, index) => {
        list.append(
          renderItem(child, `${path}.${op}[${index}]`, (next) => { children[index] = next; }, () => { children.splice(index, 1); restructured(); })
        );
      });
      const add = el(
        "div",
        { class: "rule-group__add" },
        select(
          config.kinds.map((kind) => [kind.key, kind.label]),
          "",
          (key) => {
            if (!key) return;
            children.push(clone(KINDS[key].blank));
            restructured();
            const added = element.querySelector(`[data-path="${CSS.escape(`${path}.${op}[${children.length - 1}]`)}"]`);
            added?.querySelector("input, select")?.focus();
          },
          { placeholder: L.add_condition, label: L.add_condition }
        ),
        el("button", { type: "button", class: "button button--small", onclick: () => { children.push({ and: [] }); restructured(); } }, L.add_group)
      );
      box.append(head, children.length ? list : el("p", { class: "muted rule-group__empty" }, L.empty_group), add, el("div", { class: "rule-problems", role: "alert" }));
      register(path, box);
      return box;
    }

    function renderLeaf(leaf, path, item) {
      const kindKey = kindOf(leaf);
      const kind = KINDS[kindKey];
      const box = el("div", { class: "rule-leaf", "data-path": path, "data-kind": kindKey || "unknown" });
      const body = el("span", { class: "rule-leaf__body" });
      const refresh = () => { body.replaceChildren(...editor()); changed(); };
      const editor = () => {
        if (!kind) return [el("code", {}, JSON.stringify(leaf))];
        if (kind.editor === "event") return eventEditor(leaf, refresh);
        if (kind.editor === "comparison") return comparisonEditor(leaf, kindKey, config.ops.comparison, refresh);
        return fieldsEditor(leaf, kind, refresh);
      };
      body.append(...editor());
      box.append(
        el("div", { class: "rule-leaf__row" },
          toolbar(item.negated, item.negate, null),
          el("span", { class: "badge rule-leaf__kind" }, kind ? kind.label : "?"),
          body,
          toolbar(false, null, item.remove)),
        el("div", { class: "rule-problems", role: "alert" })
      );
      register(path, box);
      return box;
    }

    // -----------------------------------------------------------------------------------------
    // Editors

    // Kinds described by their fields alone (tags, segments, roles, consent, stages, score, ...).
    function fieldsEditor(leaf, kind, refresh) {
      const parts = [];
      // A select that a later field's shape depends on (an operator that takes a range) redraws the leaf.
      const shaping = new Set(kind.fields.filter((field) => field.range_with).map((field) => field.range_with.join(".")));
      for (const field of kind.fields) {
        if (field.prefix) parts.push(words(field.prefix));
        const current = getPath(leaf, field.path);
        const store = (value) => { setPath(leaf, field.path, value); changed(); };
        if (field.widget === "select") {
          const choices = typeof field.options === "string" ? options(field.options) : field.options;
          const reshape = (value) => { setPath(leaf, field.path, value); refresh(); };
          parts.push(select(choices, current, shaping.has(field.path.join(".")) ? reshape : store, { placeholder: L.choose, label: field.prefix }));
        } else if (field.widget === "number" && field.range_with && getPath(leaf, field.range_with) === "between") {
          // "between": two numbers, lowest first.
          const pair = Array.isArray(current) ? current.slice(0, 2) : [current ?? null, null];
          setPath(leaf, field.path, pair);
          const update = (index) => (value) => { pair[index] = value === "" ? null : Number(value); store(pair); };
          parts.push(input("number", pair[0], update(0), { class: "rule-number", "aria-label": L.range_low }), words(L.and),
            input("number", pair[1], update(1), { class: "rule-number", "aria-label": L.range_high }));
        } else if (field.widget === "number") {
          const single = Array.isArray(current) ? current[0] ?? null : current;
          if (single !== current) setPath(leaf, field.path, single);
          parts.push(input("number", single, (value) => store(value === "" ? null : Number(value)), { class: "rule-number", "aria-label": field.prefix || field.suffix }));
        } else {
          const attributes = { "aria-label": field.prefix };
          if (field.suggest) attributes.list = datalist(listId(field.suggest), options(field.suggest).map(([value]) => value));
          parts.push(input("text", current, store, attributes));
        }
        if (field.suffix) parts.push(words(field.suffix));
      }
      return parts;
    }

    // A trait (nameKey "trait") or an event property ("property"): a name, an operator, a value.
    function comparisonEditor(test, nameKey, ops, refresh, suggestions) {
      const parts = [];
      const names = nameKey === "trait"
        ? vocabulary.traits.map((trait) => trait.key)
        : (suggestions || []).map((property) => property.key);
      const valuesOf = () => {
        const source = nameKey === "trait" ? vocabulary.traits : suggestions || [];
        return (source.find((entry) => entry.key === test[nameKey]) || { values: [] }).values;
      };
      const nameList = datalist(listId(nameKey === "trait" ? "traits" : `properties-${test.__event || ""}`), names);
      parts.push(input("text", test[nameKey], (value) => { test[nameKey] = value.trim(); suggestValues(); changed(); }, {
        class: "rule-name", list: nameList, placeholder: L[`${nameKey}_placeholder`], "aria-label": L[`${nameKey}_placeholder`],
      }));
      parts.push(select(ops, test.op, (op) => { test.op = op; fitValue(test); refresh(); }, { label: L[`${nameKey}_placeholder`] }));
      const valuesId = listId(`values-${nameKey}-${++uid}`);
      const suggestValues = () => valueList(valuesId, valuesOf());
      suggestValues();
      const kind = valueKinds.get(test) || (typeof test.value === "number" ? "number" : typeof test.value === "boolean" ? "boolean" : "text");
      const kindSelect = () => select([["text", L.as_text], ["number", L.as_number], ["boolean", L.as_boolean]], kind, (next) => {
        valueKinds.set(test, next);
        if (next === "boolean") test.value = Array.isArray(test.value) ? [true] : true;
        else if (Array.isArray(test.value)) test.value = test.value.map((item) => typed(String(item), next));
        else test.value = typed(String(test.value ?? ""), next);
        refresh();
      }, { label: L.as_text });
      const op = test.op;
      if (op === "exists" || op === "not_exists") {
        delete test.value;
      } else if (op === "between") {
        const pair = Array.isArray(test.value) ? test.value : ["", ""];
        test.value = pair;
        const update = (index) => (text) => { pair[index] = text; const both = pair.map(String); test.value = both.every(looksNumeric) ? both.map(Number) : both; changed(); };
        parts.push(input("text", pair[0], update(0), { class: "rule-value", list: valuesId, "aria-label": L.value_placeholder }), words(L.and),
          input("text", pair[1], update(1), { class: "rule-value", list: valuesId, "aria-label": L.value_placeholder }));
      } else if (op === "in") {
        const items = Array.isArray(test.value) ? test.value : [];
        if (kind === "boolean") {
          parts.push(select([["true", L.true], ["false", L.false]], String(items[0] ?? true), (value) => { test.value = [value === "true"]; changed(); }));
        } else {
          parts.push(input("text", items.join(", "), (text) => {
            test.value = text.split(/[,，]/).map((item) => item.trim()).filter(Boolean).map((item) => typed(item, kind));
            changed();
          }, { class: "rule-value rule-value--wide", placeholder: L.values_placeholder, "aria-label": L.values_placeholder }));
        }
        parts.push(kindSelect());
      } else if (op === "within_last_days") {
        parts.push(input("number", test.value, (text) => { test.value = text === "" ? null : Number(text); changed(); }, { class: "rule-number", min: 1, "aria-label": L.days }), words(L.days));
      } else if (op === "before" || op === "after") {
        parts.push(...dateOrDaysAgo(test, "value", refresh));
      } else if (op === "gt" || op === "gte" || op === "lt" || op === "lte") {
        parts.push(input("text", test.value, (text) => { test.value = orderable(text); changed(); }, { class: "rule-value", list: valuesId, "aria-label": L.value_placeholder }));
      } else if (kind === "boolean") {
        parts.push(select([["true", L.true], ["false", L.false]], String(test.value ?? true), (value) => { test.value = value === "true"; changed(); }), kindSelect());
      } else {
        parts.push(input("text", test.value, (text, node) => {
          test.value = typed(text, kind);
          node.setAttribute("aria-invalid", String(kind === "number" && typeof test.value !== "number" && text !== ""));
          changed();
        }, { class: "rule-value", list: valuesId, placeholder: L.value_placeholder, "aria-label": L.value_placeholder }), kindSelect());
      }
      return parts;
    }

    // A date ("2026-03-01") or a relative one ({"days_ago": N}).
    function dateOrDaysAgo(holder, key, refresh) {
      const value = holder[key];
      const relative = value && typeof value === "object";
      const mode = select([["date", L.a_date], ["days_ago", L.days_ago]], relative ? "days_ago" : "date", (next) => {
        holder[key] = next === "date" ? today(30) : { days_ago: 30 };
        refresh();
      }, { label: L.a_date });
      if (relative) {
        return [input("number", value.days_ago, (text) => { holder[key] = { days_ago: text === "" ? null : Number(text) }; changed(); }, { class: "rule-number", min: 0, "aria-label": L.days_ago }), mode];
      }
      return [input("date", value, (text) => { holder[key] = text; changed(); }, { "aria-label": L.a_date }), mode];
    }

    function eventEditor(leaf, refresh) {
      const did = leaf.did !== false;
      const moment = leaf.first_time ? "first_time" : leaf.last_time ? "last_time" : null;
      const when = moment || (leaf.within_days !== undefined ? "within" : leaf.between ? "between" : "any");
      const event = vocabulary.events.find((entry) => entry.name === leaf.event);
      const parts = [];
      if (!moment) {
        parts.push(select([["did", L.did], ["did_not", L.did_not]], did ? "did" : "did_not", (value) => {
          if (value === "did") delete leaf.did;
          else { leaf.did = false; delete leaf.count; }
          refresh();
        }, { label: L.did }));
      }
      parts.push(input("text", leaf.event, (value) => { leaf.event = value.trim(); changed(); }, {
        class: "rule-name rule-name--event", list: datalist(listId("events"), vocabulary.events.map((entry) => entry.name)),
        placeholder: L.event_placeholder, "aria-label": L.event_placeholder, onchange: () => refresh(),
      }));
      if (did && !moment) {
        const count = leaf.count;
        parts.push(select(config.ops.count, count ? count.op : "", (op) => {
          if (!op) delete leaf.count;
          else leaf.count = { op, value: count ? count.value : 1 };
          refresh();
        }, { placeholder: L.any_number, label: L.how_often }));
        if (count) {
          parts.push(input("number", count.value, (text) => { count.value = text === "" ? null : Number(text); changed(); }, { class: "rule-number", min: 0, "aria-label": L.times }), words(L.times));
        }
      }
      const whenOptions = [["any", L.any_time], ["within", L.within_days], ["between", L.between_dates]];
      if (did) whenOptions.push(["first_time", L.first_time], ["last_time", L.last_time]);
      parts.push(select(whenOptions, when, (value) => {
        for (const key of ["within_days", "between", "first_time", "last_time"]) delete leaf[key];
        if (value === "within") leaf.within_days = 30;
        if (value === "between") leaf.between = [today(30), today()];
        if (value === "first_time" || value === "last_time") { delete leaf.count; delete leaf.did; leaf[value] = { op: "within_last_days", value: 7 }; }
        refresh();
      }, { label: L.when }));
      if (when === "within") {
        parts.push(input("number", leaf.within_days, (text) => { leaf.within_days = text === "" ? null : Number(text); changed(); }, { class: "rule-number", min: 1, "aria-label": L.days }), words(L.days));
      } else if (when === "between") {
        const range = leaf.between;
        parts.push(input("date", range[0], (text) => { range[0] = text; changed(); }, { "aria-label": L.between_dates }), words(L.and),
          input("date", range[1], (text) => { range[1] = text; changed(); }, { "aria-label": L.between_dates }));
      } else if (moment) {
        const test = leaf[moment];
        parts.push(select(config.ops.moment, test.op, (op) => {
          test.op = op;
          test.value = op === "within_last_days" ? 7 : { days_ago: 30 };
          refresh();
        }, { label: L.when }));
        if (test.op === "within_last_days") {
          parts.push(input("number", test.value, (text) => { test.value = text === "" ? null : Number(text); changed(); }, { class: "rule-number", min: 1, "aria-label": L.days }), words(L.days));
        } else {
          parts.push(...dateOrDaysAgo(test, "value", refresh));
        }
      }
      // Property filters: the properties this event's latest occurrences carried.
      const filters = el("ul", { class: "rule-filters" });
      (leaf.where || []).forEach((condition, index) => {
        Object.defineProperty(condition, "__event", { value: leaf.event, enumerable: false, configurable: true });
        const row = el("li", { class: "rule-filter" }, words(L.where));
        const rowRefresh = () => { row.replaceChildren(words(L.where), ...comparisonEditor(condition, "property", config.ops.property, rowRefresh, event?.properties), remove); changed(); };
        const remove = el("button", { type: "button", class: "link-button rule-remove", "aria-label": L.remove, title: L.remove, onclick: () => {
          leaf.where.splice(index, 1);
          if (!leaf.where.length) delete leaf.where;
          refresh();
        } }, "×");
        row.append(...comparisonEditor(condition, "property", config.ops.property, rowRefresh, event?.properties), remove);
        filters.append(row);
      });
      parts.push(filters);
      parts.push(el("button", { type: "button", class: "button button--small rule-add-filter", onclick: () => {
        leaf.where = leaf.where || [];
        leaf.where.push({ property: "", op: "eq", value: "" });
        refresh();
      } }, L.add_filter));
      return parts;
    }

    // -----------------------------------------------------------------------------------------
    // Problems, next to the condition whose JSON path they name

    function showProblems() {
      for (const node of element.querySelectorAll(".has-problem")) node.classList.remove("has-problem");
      for (const slot of element.querySelectorAll(".rule-problems")) slot.replaceChildren();
      for (const problem of problems) {
        const node = paths.get(nearestPath(drawnPath(problem.path, wrapped), paths));
        if (!node) continue;
        node.classList.add("has-problem");
        const slot = [...node.children].find((child) => child.classList.contains("rule-problems"));
        slot?.append(el("small", { class: "field__error", "data-problem-path": problem.path }, problem.message));
      }
    }

    // -----------------------------------------------------------------------------------------
    // Its holder's handle

    render();
    if (vocabulary === EMPTY_VOCABULARY) {
      vocabularyLoad(config.vocabularyUrl).then((loaded) => {
        if (!loaded || destroyed) return;
        vocabulary = loaded;
        render();
      });
    }

    return {
      update({ rule: nextRule, problems: nextProblems } = {}) {
        if (destroyed) return;
        let redraw = false;
        if (nextRule !== undefined && JSON.stringify(nextRule ?? null) !== known) {
          ({ tree: rule, wrapped } = toTree(nextRule));
          known = JSON.stringify(nextRule ?? null);
          redraw = true;
        }
        if (nextProblems !== undefined) problems = nextProblems || [];
        if (redraw) render();
        else if (nextProblems !== undefined) showProblems();
      },
      get rule() {
        return clone(rule);
      },
      destroy() {
        destroyed = true;
        removeValueLists();
        element.replaceChildren();
        element.classList.remove("rule-builder--read-only");
      },
    };
  }

  // The pure helpers beside mount() are for holders (the segment pages count only a rule with a
  // condition) and for the tests.
  window.CdpRuleBuilder = { mount, hasCondition, toTree, drawnPath, nearestPath };
})();
