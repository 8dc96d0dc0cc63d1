import { describe, expect, it } from 'vitest';
import { configProblems, problemBranch, unwrap } from './schema.js';

const strings = {
  required: 'required',
  tooShort: 'short',
  tooLong: 'long {count}',
  notNumber: 'number',
  min: 'min {value}',
  max: 'max {value}',
  pattern: 'pattern',
  notObject: 'object',
  tooFew: 'few {count}',
  tooMany: 'many {count}',
};

// As pydantic's model_json_schema() writes them (journeys/nodes).
const delay = {
  properties: {
    label: { default: '', maxLength: 200, type: 'string' },
    seconds: { anyOf: [{ maximum: 31622400, minimum: 1, type: 'integer' }, { type: 'null' }], default: null },
    until_time: { anyOf: [{ pattern: '^([01]\\d|2[0-3]):[0-5]\\d$', type: 'string' }, { type: 'null' }], default: null },
  },
  type: 'object',
};
const condition = {
  $defs: {
    RuleBranch: {
      properties: { id: { type: 'string' }, label: { default: '', maxLength: 200, type: 'string' }, rule: { type: 'object' } },
      required: ['id', 'rule'],
      type: 'object',
    },
  },
  properties: { branches: { items: { $ref: '#/$defs/RuleBranch' }, maxItems: 20, minItems: 1, type: 'array' } },
  required: ['branches'],
  type: 'object',
};

describe('config problems', () => {
  it('check bounds of optional numbers and patterns, leaving empty optional values alone', () => {
    expect(configProblems({}, delay, strings)).toEqual({});
    expect(configProblems({ seconds: 0, until_time: '25:00' }, delay, strings)).toEqual({
      seconds: ['min 1'],
      until_time: ['pattern'],
    });
    expect(configProblems({ seconds: 1.5 }, delay, strings)).toEqual({ seconds: ['number'] });
  });

  it('follow references into arrays of objects, naming the item’s field', () => {
    expect(configProblems({}, condition, strings)).toEqual({ branches: ['required'] });
    expect(configProblems({ branches: [] }, condition, strings)).toEqual({ branches: ['few 1'] });
    expect(configProblems({ branches: [{ id: '', rule: [] }] }, condition, strings)).toEqual({
      'branches.0.id': ['required'],
      'branches.0.rule': ['object'],
    });
  });

  it('read an optional value as its own schema', () => {
    expect(unwrap(delay.properties.seconds, delay)).toEqual({
      schema: { default: null, maximum: 31622400, minimum: 1, type: 'integer' },
      nullable: true,
    });
  });
});

describe('problemBranch', () => {
  const config = { branches: [{ id: 'vip', label: 'VIP buyers', rule: {} }, { id: 'b2', label: '', rule: {} }] };
  const words = { branchNumber: 'branch {number}' };

  it('names the branch a rule problem is about as its handle: label, else id, else its number', () => {
    expect(problemBranch({ field: 'config.branches.0.rule', message: 'x' }, config, words)).toBe('VIP buyers');
    expect(problemBranch({ field: 'config.branches.1.rule', message: 'x' }, config, words)).toBe('b2');
    expect(problemBranch({ field: 'config.branches.1', message: 'x' }, config, words)).toBe('b2');
    expect(problemBranch({ field: 'config.branches.4.rule', message: 'x' }, config, words)).toBe('branch 5');
  });

  it('names none for a problem about the whole step', () => {
    expect(problemBranch({ field: 'config.branches', message: 'x' }, config, words)).toBeNull();
    expect(problemBranch({ field: 'config.seconds', message: 'x' }, config, words)).toBeNull();
    expect(problemBranch({ field: '', message: 'x' }, undefined, words)).toBeNull();
  });
});
