'use strict';
// Generates src/api.d.ts, the types of opslog's HTTP API, from the repo's openapi.json (one
// `export type` per component schema). The client's own types (src/index.d.ts) are written in
// terms of these, and test/types.test.js fails when src/api.d.ts differs from what this prints,
// so the client's types cannot drift from the API.
//
// Usage: node scripts/gen-types.js [path/to/openapi.json] > src/api.d.ts

const fs = require('node:fs');
const path = require('node:path');

const DEFAULT_DOCUMENT = path.join(__dirname, '..', '..', '..', 'openapi.json');

function name(ref) {
  return ref.split('/').pop();
}

function key(k) {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k) ? k : JSON.stringify(k);
}

function comment(text, indent) {
  if (!text) return '';
  const lines = String(text).replace(/\*\//g, '* /').split('\n');
  return `${indent}/** ${lines.join(`\n${indent} * `)} */\n`;
}

/** A JSON Schema (as utoipa writes it) as a TypeScript type. */
function type(schema, indent) {
  if (schema === true || schema === undefined) return 'unknown';
  if (schema.$ref) return name(schema.$ref);
  const variants = schema.oneOf || schema.anyOf;
  if (variants) return [...new Set(variants.map((s) => type(s, indent)))].join(' | ');
  if (schema.allOf) return schema.allOf.map((s) => type(s, indent)).join(' & ');
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  const kinds = schema.type === undefined ? [] : [].concat(schema.type);
  if (kinds.length === 0) return schema.properties ? object(schema, indent) : 'unknown';
  return kinds.map((kind) => one(kind, schema, indent)).join(' | ');
}

function one(kind, schema, indent) {
  switch (kind) {
    case 'null':
      return 'null';
    case 'string':
      return 'string';
    case 'integer':
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'array':
      return `Array<${type(schema.items, indent)}>`;
    case 'object':
      return object(schema, indent);
    default:
      throw new Error(`unknown JSON Schema type ${kind}`);
  }
}

function object(schema, indent) {
  const inner = `${indent}  `;
  const required = new Set(schema.required || []);
  const properties = schema.properties || {};
  const lines = Object.keys(properties)
    .sort()
    .map(
      (k) =>
        `${comment(properties[k].description, inner)}${inner}${key(k)}${required.has(k) ? '' : '?'}: ${type(properties[k], inner)};`
    );
  const extra = schema.additionalProperties;
  if (extra && typeof extra === 'object') {
    lines.push(`${inner}[key: string]: ${type(extra, inner)};`);
  } else if (extra !== false && lines.length === 0) {
    lines.push(`${inner}[key: string]: unknown;`);
  }
  return `{\n${lines.join('\n')}\n${indent}}`;
}

function generate(document) {
  const schemas = document.components.schemas;
  const out = [
    '// Generated from openapi.json by scripts/gen-types.js: do not edit.',
    '// test/types.test.js fails when this file and the API document differ.',
    '',
  ];
  for (const schemaName of Object.keys(schemas).sort()) {
    const schema = schemas[schemaName];
    out.push(`${comment(schema.description, '')}export type ${schemaName} = ${type(schema, '')};`, '');
  }
  return out.join('\n');
}

module.exports = { generate, DEFAULT_DOCUMENT };

if (require.main === module) {
  const file = process.argv[2] || DEFAULT_DOCUMENT;
  process.stdout.write(generate(JSON.parse(fs.readFileSync(file, 'utf8'))));
}
