import { describe, expect, it } from 'vitest';
import { parseWallListing, typeWallValue } from './wall.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('typeWallValue', () => {
  it.each([
    ['true', true],
    ['FALSE', false],
    ['42', 42],
    ['-7', -7],
    ['+3', 3],
    ['face', 'face'],
    ['OK', 'OK'],
    ['0x1f', '0x1f'],
    ['0b101', '0b101'],
    ['12345678901234567890', '12345678901234567890'],
    ['{"a":1}', { a: 1 }],
    ['[1,2]', [1, 2]],
    ['{not json', '{not json'],
    ['hello world\n', 'hello world'],
  ])('%j → %j', (raw, want) => {
    expect(typeWallValue(raw)).toEqual(want);
  });

  it('skips empty values', () => {
    expect(typeWallValue('')).toBeUndefined();
  });
});

describe('parseWallListing', () => {
  it('builds nested data from written paths', () => {
    const listing = `./test/written\t${b64('hi')}\n./test/count\t${b64('42')}\ncrowbar_wall/x/y\t${b64('true')}\n`;
    expect(parseWallListing(listing)).toEqual({
      wall: { test: { written: 'hi', count: 42 }, crowbar_wall: { x: { y: true } } },
      rejected: [],
    });
  });

  it('rejects paths that are not plain names', () => {
    const r = parseWallListing(`../etc/passwd\t${b64('x')}\na//b\t${b64('y')}\nok\t${b64('1')}\n`);
    expect(r.wall).toEqual({ ok: 1 });
    expect(r.rejected).toEqual(['../etc/passwd', 'a//b']);
  });
});
