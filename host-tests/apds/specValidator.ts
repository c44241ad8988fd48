// Validates a response body against the schema the APDS OpenAPI document (host-tests/apds/spec/,
// parkingdata/spec) gives for that path, method and status, with ajv. The document is OpenAPI
// 3.0: its schemas are JSON Schema draft 4/7 plus `nullable` and `example`, which ajv (not strict)
// passes over.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import formatsModule from 'ajv-formats';

// ajv-formats is CommonJS: its default export arrives wrapped under ESM.
const addFormats = ((formatsModule as unknown as { default?: typeof formatsModule }).default ??
  formatsModule) as unknown as (a: Ajv) => void;

const SPEC_FILE = join(import.meta.dirname, 'spec', 'APDS_API_bundled.json');

export interface SpecDocument {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<
    string,
    Record<string, { responses?: Record<string, { content?: Record<string, unknown> }> }>
  >;
}

export const apdsSpec: SpecDocument = JSON.parse(readFileSync(SPEC_FILE, 'utf8'));

// The bundler that wrote the document points some $refs through other $refs
// (`#/paths/~1places/…/oneOf/0/allOf/0/allOf/1` where `allOf/0` is itself a $ref), which JSON
// Pointer does not follow. Each such $ref is rewritten to the location it reaches, and OpenAPI 3.0's
// boolean exclusive bounds to draft 7's numbers; nothing else in the document changes.
const decode = (token: string) => token.replace(/~1/g, '/').replace(/~0/g, '~');
const encode = (token: string) => token.replace(/~/g, '~0').replace(/\//g, '~1');
const resolved = new Map<string, string[]>();
function locate(ref: string, depth = 0): string[] {
  const known = resolved.get(ref);
  if (known) return known;
  if (depth > 50) throw new Error(`$ref loop at ${ref}`);
  let at: string[] = [];
  let node: unknown = apdsSpec;
  for (const raw of ref.replace(/^#\//, '').split('/')) {
    const token = decodeURIComponent(decode(raw));
    let here = node as Record<string, unknown>;
    while (here && typeof here.$ref === 'string' && !(token in here)) {
      at = locate(here.$ref, depth + 1);
      here = at.reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], apdsSpec) as Record<
        string,
        unknown
      >;
    }
    if (!here || !(token in here)) throw new Error(`the APDS document's $ref ${ref} leads nowhere`);
    node = here[token];
    at = [...at, token];
  }
  resolved.set(ref, at);
  return at;
}
function rewriteRefs(node: unknown): void {
  if (!node || typeof node !== 'object') return;
  const object = node as Record<string, unknown>;
  if (typeof object.$ref === 'string' && object.$ref.startsWith('#/'))
    object.$ref = `#/${locate(object.$ref).map(encode).join('/')}`;
  // OpenAPI 3.0's boolean exclusiveMinimum/Maximum (draft 4) in draft 7's form.
  for (const [flag, bound] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const)
    if (typeof object[flag] === 'boolean') {
      if (object[flag] === true && typeof object[bound] === 'number') {
        object[flag] = object[bound];
        delete object[bound];
      } else delete object[flag];
    }
  for (const value of Object.values(object)) rewriteRefs(value);
}
rewriteRefs(apdsSpec);

/**
 * Where the published draft contradicts itself, so that no document could match it, the validator
 * corrects exactly that and nothing else (docs/apds.md lists these):
 * - Reference: `required: [className, id]` with `maxProperties: 1` — the property-count bounds go.
 * - HierarchyElementData: `oneOf` over Campus, Place, IdentifiedArea, … where every IdentifiedArea
 *   (and every Place) is also a valid Campus, so no element matches exactly one — `anyOf` here,
 *   and each element is checked against the member its `type` names (assertPlace).
 */
export const SPEC_CORRECTIONS = [
  'Reference: maxProperties 1 and minProperties 1 dropped (it requires two properties, className and id)',
  'HierarchyElementData: oneOf read as anyOf (every IdentifiedArea and Place is also a valid Campus); each place is validated against the member its type names',
  'HolderCredential: oneOf read as anyOf (its three members, Vehicle-, Customer- and OtherCredential, are the same schema)',
] as const;
const ANY_OF = new Set(['HierarchyElementData', 'HolderCredential']);
const renamed: string[] = [];
function correct(node: unknown, path: string): void {
  if (!node || typeof node !== 'object') return;
  const object = node as Record<string, unknown>;
  if (object.title === 'Reference' && object.maxProperties === 1) {
    delete object.maxProperties;
    delete object.minProperties;
  }
  if (typeof object.title === 'string' && ANY_OF.has(object.title) && Array.isArray(object.oneOf)) {
    object.anyOf = object.oneOf;
    delete object.oneOf;
    renamed.push(`${path}/oneOf/`);
  }
  for (const [key, value] of Object.entries(object)) correct(value, `${path}/${encode(key)}`);
}
correct(apdsSpec, '#');
function followRenames(node: unknown): void {
  if (!node || typeof node !== 'object') return;
  const object = node as Record<string, unknown>;
  const ref = object.$ref;
  if (typeof ref === 'string')
    for (const prefix of renamed)
      if (ref.startsWith(prefix))
        object.$ref = `${prefix.slice(0, -'oneOf/'.length)}anyOf/${ref.slice(prefix.length)}`;
  for (const value of Object.values(object)) followRenames(value);
}
followRenames(apdsSpec);

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
ajv.addSchema({ ...apdsSpec, $id: 'apds' } as object, 'apds');

const pointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
const compiled = new Map<string, ValidateFunction>();

/** The validator for the response schema of `method path → status` (JSON body). */
export function responseValidator(path: string, method: string, status: number): ValidateFunction {
  const key = `${method} ${path} ${status}`;
  let validate = compiled.get(key);
  if (!validate) {
    const response = apdsSpec.paths[path]?.[method]?.responses?.[String(status)];
    if (!response?.content?.['application/json'])
      throw new Error(`the APDS document has no JSON response for ${key}`);
    validate = ajv.compile({
      $ref: `apds#/paths/${pointer(path)}/${method}/responses/${status}/content/application~1json/schema`,
    });
    compiled.set(key, validate);
  }
  return validate;
}

/** Throws with ajv's errors when `body` does not match the document's schema. */
export function assertMatchesSpec(path: string, method: string, status: number, body: unknown): void {
  const validate = responseValidator(path, method, status);
  if (!validate(body))
    throw new Error(
      `${method.toUpperCase()} ${path} ${status} does not match the APDS document:\n${ajv.errorsText(validate.errors, { separator: '\n' })}\n${JSON.stringify(body).slice(0, 1500)}`,
    );
}

const byPointer = new Map<string, ValidateFunction>();
/** Throws unless `body` matches the schema at `pointer` (a JSON Pointer into the document). */
export function assertMatchesPointer(pointer: string, body: unknown, what = pointer): void {
  let validate = byPointer.get(pointer);
  if (!validate) {
    validate = ajv.compile({ $ref: `apds#/${locate(`#${pointer}`).map(encode).join('/')}` });
    byPointer.set(pointer, validate);
  }
  if (!validate(body))
    throw new Error(
      `${what} does not match the APDS document:\n${ajv.errorsText(validate.errors, { separator: '\n' })}\n${JSON.stringify(body).slice(0, 1500)}`,
    );
}

/** A request body the document's `method path` accepts. */
export function assertRequestMatchesSpec(path: string, method: string, body: unknown): void {
  assertMatchesPointer(
    `/paths/${pointer(path)}/${method}/requestBody/content/application~1json/schema`,
    body,
    `${method.toUpperCase()} ${path} request`,
  );
}

/** The webhook payload (EventData) of the document's callback on POST /webhooks. */
export function assertEventData(body: unknown): void {
  assertMatchesPointer(
    `/paths/~1webhooks/post/callbacks/placeEvent/${pointer('{$request.body#/endpoint}')}/post/requestBody/content/application~1json/schema`,
    body,
    'EventData',
  );
}

/** The document's ResponseStatus (as on a refused POST /rights/assigned). */
export function assertResponseStatus(body: unknown): void {
  assertMatchesPointer(
    '/paths/~1rights~1assigned/post/responses/400/content/application~1json/schema',
    body,
    'ResponseStatus',
  );
}

const PLACE_MEMBERS: Record<string, string> = {
  campus: 'Campus',
  parkingPlace: 'Place',
  identifiedArea: 'IdentifiedArea',
  space: 'Space',
};
/** A place element against the HierarchyElementData member its `type` names. */
export function assertPlace(element: { type?: string }): void {
  const title = PLACE_MEMBERS[element.type ?? ''];
  if (!title) throw new Error(`place type ${element.type} is not one ParkLink serves`);
  const body = apdsSpec.paths['/places'].post as unknown as {
    requestBody: { content: Record<string, { schema: { anyOf: { title: string }[] } }> };
  };
  const members = body.requestBody.content['application/json'].schema.anyOf;
  const index = members.findIndex((m) => m.title === title);
  assertMatchesPointer(
    `/paths/~1places/post/requestBody/content/application~1json/schema/anyOf/${index}`,
    element,
    `a place of type ${element.type}`,
  );
}
