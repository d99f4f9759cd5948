import { describe, expect, it } from 'vitest';
import { type Schema, schemaProblem } from './schema.js';

// Attrib values are checked all the way down, not only their top-level type (reference §1.6).
const keys: Schema = { type: 'object', additionalProperties: { type: 'string', pattern: '^ssh-' } };
const maps: Schema = {
  type: 'array',
  items: {
    type: 'object',
    required: ['pattern'],
    properties: { pattern: { type: 'string' }, bus_order: { type: 'array', items: { type: 'string' } } },
    additionalProperties: false,
  },
};

describe('schemaProblem', () => {
  it.each<[string, Schema, unknown, string | null]>([
    ['a fitting string', { type: 'string' }, 'x', null],
    ['an integer where a number goes', { type: 'number' }, 3, null],
    ['a float where an integer goes', { type: 'integer' }, 1.5, 'value: must be integer, got number'],
    ['a wrong top-level type', { type: 'object' }, [], 'value: must be object, got array'],
    ['one of several types', { type: ['string', 'null'] }, null, null],
    ['a value outside enum', { enum: ['a', 'b'] }, 'c', 'value: must be one of "a", "b"'],
    ['a number below minimum', { type: 'integer', minimum: 1 }, 0, 'value: must be at least 1'],
    ['a string not matching', { type: 'string', pattern: '^[a-z]+$' }, 'A', 'value: must match ^[a-z]+$'],
    ['nested map values that fit', keys, { alice: 'ssh-ed25519 AAAA' }, null],
    ['a nested map value of the wrong type', keys, { alice: 7 }, 'value.alice: must be string, got integer'],
    ['a nested map value not matching', keys, { bob: 'rsa' }, 'value.bob: must match ^ssh-'],
    ['array items that fit', maps, [{ pattern: 'R720', bus_order: ['0000:00'] }], null],
    ['a missing required key in an item', maps, [{ bus_order: [] }], 'value.0.pattern: is required'],
    ['an unknown key in an item', maps, [{ pattern: 'x', extra: 1 }], 'value.0.extra: is not allowed'],
    [
      'a deep wrong type',
      maps,
      [{ pattern: 'x' }, { pattern: 'y', bus_order: [1] }],
      'value.1.bus_order.0: must be string, got integer',
    ],
    ['no schema at all', {}, { anything: [1, 'two'] }, null],
  ])('%s', (_what, schema, value, problem) => {
    expect(schemaProblem(schema, value)).toBe(problem);
  });
});
