// Validate glTF/GLB files with the Khronos glTF validator (npm gltf-validator, installed by `make install`).
// Usage: node tools/js/validate.mjs FILE...   Prints one JSON object per file:
// {"file", "errors", "warnings", "infos", "hints", "messages": [first 20 issues]}; exit 1 when any file has errors.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const validator = require('gltf-validator');

let failed = false;
for (const file of process.argv.slice(2)) {
    const bytes = new Uint8Array(await readFile(file));
    // externals: a GLB written by facerecon is self-contained, so any external reference is an error
    const report = await validator.validateBytes(bytes, { maxIssues: 200, writeTimestamp: false });
    const i = report.issues;
    const out = {
        file, errors: i.numErrors, warnings: i.numWarnings, infos: i.numInfos, hints: i.numHints,
        messages: i.messages.slice(0, 20).map((m) => `${['error', 'warning', 'info', 'hint'][m.severity]} ${m.code} ${m.pointer ?? ''} ${m.message}`),
    };
    if (i.numErrors > 0) failed = true;
    console.log(JSON.stringify(out));
}
process.exit(failed ? 1 : 0);
