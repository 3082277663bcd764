#!/usr/bin/env node
// Parses .dart files with a real Dart grammar (tree-sitter-dart, run by
// web-tree-sitter as WebAssembly) and reports every syntax error as
// FILE:LINE:COL. No Dart compiler can be installed on dartup's machines, so
// this is the mechanical check of the Dart code that CI can do: it catches
// syntax errors, not type errors.
//
// Usage: node check_syntax.mjs [FILE_OR_DIR ...]
// Without arguments it checks clientsdk/dart and examples/ of the repository.
// Exit status: 0 all files parse, 1 syntax errors, 2 no .dart file found or
// the grammar could not be loaded.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { Parser, Language } from 'web-tree-sitter';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const skipDirs = new Set(['node_modules', '.dart_tool', 'build', '.git']);

function defaultRoots() {
  const pkg = path.resolve(here, '..');
  return [pkg, path.resolve(pkg, '..', '..', 'examples')];
}

function collect(p, out) {
  let st;
  try {
    st = fs.statSync(p);
  } catch (e) {
    console.error(`${p}: ${e.message}`);
    process.exitCode = 2;
    return;
  }
  if (st.isFile()) {
    if (p.endsWith('.dart')) out.push(p);
    return;
  }
  if (!st.isDirectory()) return;
  for (const name of fs.readdirSync(p).sort()) {
    if (skipDirs.has(name) || name.startsWith('.')) continue;
    collect(path.join(p, name), out);
  }
}

function problems(node, out) {
  if (node.isError || node.isMissing) {
    out.push(node);
    return;
  }
  if (!node.hasError) return;
  for (const child of node.children) problems(child, out);
}

function describe(node, src) {
  if (node.isMissing) return `missing ${JSON.stringify(node.type)}`;
  const text = src.slice(node.startIndex, Math.min(node.endIndex, node.startIndex + 40));
  return `syntax error at ${JSON.stringify(text.split('\n')[0])}`;
}

async function main() {
  const args = process.argv.slice(2);
  const roots = args.length ? args : defaultRoots();
  const files = [];
  for (const r of roots) collect(path.resolve(r), files);
  if (files.length === 0) {
    console.error(`no .dart file under ${roots.join(', ')}`);
    process.exit(2);
  }

  const wasm = require.resolve('@repomix/tree-sitter-wasms/out/tree-sitter-dart.wasm');
  await Parser.init();
  const dart = await Language.load(wasm);
  const parser = new Parser();
  parser.setLanguage(dart);

  let errors = 0;
  for (const file of files) {
    const src = fs.readFileSync(file, 'utf8');
    const tree = parser.parse(src);
    const found = [];
    problems(tree.rootNode, found);
    if (tree.rootNode.hasError && found.length === 0) found.push(tree.rootNode);
    const rel = path.relative(process.cwd(), file) || file;
    for (const n of found) {
      const { row, column } = n.startPosition;
      console.log(`${rel}:${row + 1}:${column + 1}: ${describe(n, src)}`);
      errors++;
    }
    tree.delete();
  }
  console.log(`parsed ${files.length} .dart files with tree-sitter-dart: ${errors} syntax error(s)`);
  if (errors > 0) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(2);
});
