// `npm run schemas`: writes the published JSON Schemas from the zod sources.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { planJsonSchema } from '../src/plan/schema.js';
import { auditJsonSchema } from '../src/report/audit-schema.js';
import { projectRoot } from '../testenv/paths.js';

await writeFile(
  join(projectRoot, 'schema', 'migration-plan-v1.json'),
  `${JSON.stringify(planJsonSchema(), null, 2)}\n`,
);
await writeFile(
  join(projectRoot, 'schema', 'audit-report-v1.json'),
  `${JSON.stringify(auditJsonSchema(), null, 2)}\n`,
);
console.log('wrote schema/migration-plan-v1.json and schema/audit-report-v1.json');
