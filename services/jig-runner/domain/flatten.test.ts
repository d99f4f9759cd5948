import { describe, expect, it } from 'vitest';
import { flattenAttributes } from './flatten.js';

const decode = (flat: string) =>
  Object.fromEntries(
    flat
      .trim()
      .split('\n')
      .map((l) => l.split('\t'))
      .map(([p, v]) => [p, Buffer.from(v!, 'base64').toString('utf8')]),
  );

describe('flattenAttributes', () => {
  it('lists every path with raw strings and JSON for the rest', () => {
    const flat = decode(
      flattenAttributes({ a: { b: 'x y', n: 3, t: true, l: [1, { c: 'z' }], nil: null }, 'bad/key': 1 }),
    );
    expect(flat).toEqual({
      a: '{"b":"x y","n":3,"t":true,"l":[1,{"c":"z"}],"nil":null}',
      'a/b': 'x y',
      'a/n': '3',
      'a/t': 'true',
      'a/l': '[1,{"c":"z"}]',
      'a/l/0': '1',
      'a/l/1': '{"c":"z"}',
      'a/l/1/c': 'z',
    });
  });

  it('is empty for empty data', () => {
    expect(flattenAttributes({})).toBe('');
  });
});
