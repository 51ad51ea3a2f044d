// `target import --from aws` against moto's server (testenv/moto.ts) with
// as many provider secrets as the plan has paths, against the loop a user
// writes today: per secret, `aws secretsmanager get-secret-value` (the AWS
// CLI from its pinned PyPI package), jq to turn the JSON object into
// key=value pairs, `bao kv put`. The loop is timed on a sample and scaled, as
// the Kubernetes loop is.
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mapLimit } from '../src/core/concurrency.js';
import { mappedFields } from '../src/plan/model.js';
import { parsePlan } from '../src/plan/read.js';
import { startMoto } from '../testenv/moto.js';
import { ensureVenv } from '../testenv/venv.js';

export interface Timed {
  seconds: number;
  rssMb: number;
  code: number;
}

export async function benchImportAws(o: {
  planText: string;
  work: string;
  env: NodeJS.ProcessEnv;
  cli: string;
  bao: string;
  concurrency: number;
  baoHttp: (method: string, path: string, body?: unknown) => Promise<number>;
  timed: (cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string) => Promise<Timed>;
  log: (s: string) => void;
}): Promise<{ row: string[]; memory: string[] }> {
  const mounts = { ours: 'bench-import-aws', loop: 'bench-import-aws-loop' };
  for (const m of Object.values(mounts)) {
    await o.baoHttp('DELETE', `sys/mounts/${m}`);
    await o.baoHttp('POST', `sys/mounts/${m}`, { type: 'kv', options: { version: '2' } });
  }
  const plan = o.planText.replaceAll('vaultPath: secret/data/', `vaultPath: ${mounts.ours}/data/`);
  await writeFile(join(o.work, 'plan-import-aws.yaml'), plan);
  const secrets = new Map<string, { ns: string; name: string; fields: Set<string> }>();
  for (const t of parsePlan(plan, 'plan-import-aws.yaml').plan.tenants) {
    for (const w of t.workloads) {
      for (const s of w.secrets) {
        const name = s.source.slice('k8s-secret/'.length);
        const e = secrets.get(s.vaultPath) ?? { ns: t.namespace, name, fields: new Set<string>() };
        for (const f of mappedFields(s)) e.fields.add(f);
        secrets.set(s.vaultPath, e);
      }
    }
  }
  const list = [...secrets.values()];
  const [moto, awsBin] = await Promise.all([
    startMoto(o.log),
    ensureVenv(o.log, {
      id: 'awscli',
      label: 'AWS CLI (bench baseline)',
      requirements: 'testenv/awscli-requirements.txt',
      estimate: 'about 1 minute',
    }),
  ]);
  try {
    const region = 'eu-west-1';
    const credentials = { accessKeyId: 'AKIDBENCHONLY', secretAccessKey: 'bench-only' };
    const client = new SecretsManagerClient({ region, endpoint: moto.url, credentials });
    o.log(`creating ${list.length} secrets in moto`);
    await mapLimit(list, o.concurrency, async (s) => {
      const value = Object.fromEntries(
        [...s.fields].map((f) => [f, randomBytes(12).toString('hex')]),
      );
      await client.send(
        new CreateSecretCommand({ Name: `${s.ns}/${s.name}`, SecretString: JSON.stringify(value) }),
      );
    });
    client.destroy();
    const env = {
      ...o.env,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: region,
      // The AWS CLI v1 reads only this one.
      AWS_DEFAULT_REGION: region,
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    const ours = await o.timed(
      process.execPath,
      [
        o.cli,
        'target',
        'import',
        '--plan',
        'plan-import-aws.yaml',
        '--from',
        'aws',
        '--endpoint',
        moto.url,
      ],
      env,
      o.work,
    );
    if (ours.code !== 0) throw new Error(`target import --from aws exited ${ours.code}`);
    const sample = list.slice(0, Math.min(list.length, 50));
    const pairs = `'to_entries[] | "\\(.key)=\\(.value)"'`;
    const loop = await o.timed(
      'sh',
      [
        '-c',
        sample
          .map(
            ({ ns, name }) =>
              `"$AWS" secretsmanager get-secret-value --endpoint-url "$ENDPOINT" --secret-id ${ns}/${name} --query SecretString --output text | jq -r ${pairs} | xargs -d '\\n' "$BAO" kv put -mount=${mounts.loop} ${ns}/${name} >/dev/null`,
          )
          .join(' && '),
      ],
      { ...env, AWS: join(awsBin, 'aws'), BAO: o.bao, ENDPOINT: moto.url },
      o.work,
    );
    if (loop.code !== 0) throw new Error(`the AWS import shell loop exited ${loop.code}`);
    const loopAll = (loop.seconds * list.length) / sample.length;
    return {
      row: [
        `target import ${list.length} secrets from AWS Secrets Manager (moto server)`,
        `${ours.seconds.toFixed(2)} s (verify included)`,
        `aws secretsmanager get-secret-value + jq + bao kv put loop: ${loopAll.toFixed(1)} s (${sample.length} timed, scaled)`,
        `${(loopAll / ours.seconds).toFixed(1)}× faster`,
        '≥ 20× faster, ≤ 200 MB',
      ],
      memory: [`target import --from aws (${list.length} secrets)`, `${ours.rssMb} MB`],
    };
  } finally {
    await moto.stop();
  }
}
