import { useEffect, useMemo, useRef } from 'react';
import { ruleProblems } from './model.js';

// Whether the page gave the builder's script and its config; else rules are edited as JSON.
export function ruleBuilderAvailable(config) {
  return Boolean(config && typeof window !== 'undefined' && window.CdpRuleBuilder);
}

// The segment pages' rule builder (segments/static/segments/rule_builder.js, loaded by the editor's
// page before the island) mounted on an element React leaves empty: the builder draws and edits
// the tree itself and hands each edit to `onChange`, so an edit reaches the model as any field's
// does (saved, undone, validated). A rule changed from outside (undo, the JSON editor) and the
// problems of the last validation are handed back to it.
export default function RuleBuilder({ id, labelId, field, value, onChange, serverProblems, readOnly, config }) {
  const host = useRef(null);
  const builder = useRef(null);
  // The builder keeps the callback it was mounted with; this one always calls the latest, whose
  // closure holds the config as it is now.
  const latestOnChange = useRef(onChange);
  latestOnChange.current = onChange;
  // A new list only when a validation answered: the builder drops shown problems when the
  // marketer changes the tree's structure, and shows them again with the next answer.
  const problems = useMemo(() => ruleProblems(serverProblems, field), [serverProblems, field]);

  useEffect(() => {
    builder.current = window.CdpRuleBuilder.mount(host.current, {
      config,
      rule: value,
      problems,
      readOnly,
      onChange: (rule) => latestOnChange.current(rule),
    });
    return () => {
      builder.current.destroy();
      builder.current = null;
    };
  }, [config, readOnly]); // eslint-disable-line react-hooks/exhaustive-deps -- rule and problems follow below

  useEffect(() => {
    builder.current?.update({ rule: value });
  }, [value]);

  useEffect(() => {
    builder.current?.update({ problems });
  }, [problems]);

  return <div ref={host} id={id} className="rule-builder" role="group" aria-labelledby={labelId} data-rule-builder={field} />;
}
