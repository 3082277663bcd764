// Package schemalite validates JSON values against a JSON Schema
// (draft-07) that uses only a small set of keywords: the ones
// deploy/dartup.schema.json needs, and nothing more.
//
// Implemented: type, enum, pattern, minLength, maxLength, minimum,
// maximum, items (one schema for every item), minItems, maxItems,
// properties, additionalProperties (false or a schema), required,
// propertyNames, minProperties, maxProperties and oneOf. The annotations
// $schema (draft-07 only), $id, $comment, title, description, default and
// examples are accepted and ignored. [Compile] refuses every other keyword,
// so a schema cannot silently grow past what is checked.
//
// Errors are written for the person who wrote the document: each says what
// is wrong and what is allowed ("must be an integer, got a string"), with a
// JSON pointer to the failing value. A failing oneOf reports only the
// alternative that fits the value best, not every alternative's failures.
//
// The package does no work at init; compile a schema once (sync.OnceValues)
// where it is first needed.
package schemalite
