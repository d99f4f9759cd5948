/**
 * Attrib value checks (reference §1.6: user writes pass schema validation — the original wrapped each
 * attrib's Kwalify fragment and checked the whole value). Our schemas are a JSON Schema subset, checked
 * all the way down: `type` (string, integer, number, boolean, object, array, null, or a list of them),
 * `enum`, `properties` / `required` / `additionalProperties` for objects, `items` / `minItems` /
 * `maxItems` for arrays, `minimum` / `maximum`, `minLength` / `maxLength` / `pattern`. Answers the
 * first problem as `<path>: <what>`, or null when the value fits.
 */
export type Schema = Record<string, unknown>;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export const jsonType = (v: unknown) =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'array'
      : Number.isInteger(v)
        ? 'integer'
        : typeof v === 'object'
          ? 'object'
          : typeof v;

const fits = (want: string, got: string) => got === want || (want === 'number' && got === 'integer');

export function schemaProblem(schema: Schema, value: unknown, path = 'value'): string | null {
  const types =
    typeof schema.type === 'string' ? [schema.type] : Array.isArray(schema.type) ? schema.type : [];
  const got = jsonType(value);
  if (types.length > 0 && !types.some((t) => typeof t === 'string' && fits(t, got)))
    return `${path}: must be ${types.join(' or ')}, got ${got}`;
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value)))
    return `${path}: must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`;
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum)
      return `${path}: must be at least ${schema.minimum}`;
    if (typeof schema.maximum === 'number' && value > schema.maximum)
      return `${path}: must be at most ${schema.maximum}`;
  }
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength)
      return `${path}: must be at least ${schema.minLength} characters`;
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength)
      return `${path}: must be at most ${schema.maxLength} characters`;
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(value))
      return `${path}: must match ${schema.pattern}`;
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems)
      return `${path}: must have at least ${schema.minItems} items`;
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems)
      return `${path}: must have at most ${schema.maxItems} items`;
    if (isObject(schema.items))
      for (const [i, item] of value.entries()) {
        const p = schemaProblem(schema.items, item, `${path}.${i}`);
        if (p) return p;
      }
  }
  if (isObject(value)) {
    const props = isObject(schema.properties) ? schema.properties : {};
    if (Array.isArray(schema.required))
      for (const k of schema.required)
        if (typeof k === 'string' && !(k in value)) return `${path}.${k}: is required`;
    for (const [k, v] of Object.entries(value)) {
      const sub = props[k];
      if (isObject(sub)) {
        const p = schemaProblem(sub, v, `${path}.${k}`);
        if (p) return p;
      } else if (schema.additionalProperties === false) return `${path}.${k}: is not allowed`;
      else if (isObject(schema.additionalProperties)) {
        const p = schemaProblem(schema.additionalProperties, v, `${path}.${k}`);
        if (p) return p;
      }
    }
  }
  return null;
}
