// The rule builder's pure helpers (segments/static/segments/rule_builder.js, a plain page script
// shared by the segment pages and the canvas), run as the browser runs the script.
import { readFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';

const source = readFileSync(new URL('../../../segments/static/segments/rule_builder.js', import.meta.url), 'utf8');
const window = {};
runInNewContext(source, { window });
const { drawnPath, hasCondition, nearestPath, toTree } = window.CdpRuleBuilder;
const plain = (value) => JSON.parse(JSON.stringify(value));

describe('the rule builder', () => {
  it('edits a group at the root: a single condition becomes the only one of an "all"', () => {
    const leaf = { event: 'Menu Clicked', within_days: 1 };
    expect(plain(toTree(leaf))).toEqual({ tree: { and: [leaf] }, wrapped: true });
    expect(plain(toTree({ not: { tag: 'lead' } }))).toEqual({ tree: { and: [{ not: { tag: 'lead' } }] }, wrapped: true });
    expect(plain(toTree({ or: [leaf] }))).toEqual({ tree: { or: [leaf] }, wrapped: false });
    for (const empty of [undefined, null, {}, [], 'text']) expect(plain(toTree(empty))).toEqual({ tree: { and: [] }, wrapped: false });
  });

  it('edits a copy: the holder\'s rule is never changed under it', () => {
    const rule = { and: [{ tag: 'lead' }] };
    toTree(rule).tree.and.push({ tag: 'vip' });
    expect(rule).toEqual({ and: [{ tag: 'lead' }] });
  });

  it('tells a rule with a condition from empty groups', () => {
    expect(hasCondition({ and: [] })).toBe(false);
    expect(hasCondition({ and: [{ or: [] }, { not: { and: [] } }] })).toBe(false);
    expect(hasCondition({ and: [{ or: [{ not: { tag: 'lead' } }] }] })).toBe(true);
  });

  it('shows a problem at the nearest condition or group drawn for its JSON path', () => {
    const drawn = new Set(['$', '$.and[0]', '$.and[1]', '$.and[1].or[0]', '$.and[1].or[0].not']);
    expect(nearestPath('$.and[1].or[0].not.count.value', drawn)).toBe('$.and[1].or[0].not');
    expect(nearestPath('$.and[0].where[2].value', drawn)).toBe('$.and[0]');
    expect(nearestPath('$.and', drawn)).toBe('$');
    expect(nearestPath('$.and[7].event', drawn)).toBe('$');
  });

  it('finds the problems of a single condition under the group it is drawn in', () => {
    expect(drawnPath('$.where[0].value', true)).toBe('$.and[0].where[0].value');
    expect(drawnPath('$', true)).toBe('$.and[0]');
    expect(drawnPath('$.and[1].event', false)).toBe('$.and[1].event');
    expect(drawnPath(undefined, false)).toBe('$');
  });
});
