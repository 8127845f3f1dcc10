// Helpers for the deploy tests, run with node from `go test`.
//
//   node parse.cjs bicep FILE...   parse each file with tree-sitter-bicep and
//                                  print [{file, problems: [{kind, row, column, text}]}]
//   node parse.cjs yaml FILE       print the YAML document as JSON
//
// Modules are resolved from NODE_PATH (set by the test to the project's
// node_modules) or, failing that, by node's usual upward search.
'use strict';

const fs = require('fs');

function bicep(files) {
  const Parser = require('tree-sitter');
  const Bicep = require('tree-sitter-bicep');
  const parser = new Parser();
  parser.setLanguage(Bicep);

  return files.map((file) => {
    const text = fs.readFileSync(file, 'utf8');
    // The default input buffer is small; a larger one avoids spurious
    // failures on long files.
    const tree = parser.parse(text, null, { bufferSize: 2 * text.length + 1024 });
    const problems = [];
    const walk = (node) => {
      const missing = typeof node.isMissing === 'function' ? node.isMissing() : node.isMissing;
      if (node.type === 'ERROR' || missing) {
        problems.push({
          kind: missing ? 'MISSING ' + node.type : 'ERROR',
          row: node.startPosition.row + 1,
          column: node.startPosition.column + 1,
          text: text.slice(node.startIndex, Math.min(node.endIndex, node.startIndex + 80)),
        });
      }
      for (const child of node.children) walk(child);
    };
    walk(tree.rootNode);
    const hasError = typeof tree.rootNode.hasError === 'function' ? tree.rootNode.hasError() : tree.rootNode.hasError;
    if (hasError && problems.length === 0) {
      problems.push({ kind: 'ERROR', row: 0, column: 0, text: 'tree reports an error that was not located' });
    }
    return { file, problems };
  });
}

function yaml(file) {
  const YAML = require('yaml');
  return YAML.parse(fs.readFileSync(file, 'utf8'));
}

const [cmd, ...args] = process.argv.slice(2);
let result;
switch (cmd) {
  case 'bicep':
    result = bicep(args);
    break;
  case 'yaml':
    result = yaml(args[0]);
    break;
  default:
    console.error('usage: parse.cjs bicep FILE... | yaml FILE');
    process.exit(2);
}
process.stdout.write(JSON.stringify(result));
