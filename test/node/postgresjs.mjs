// postgresjs.mjs -- postgres.js (npm postgres, prepare: true, its default)
// through pgslab, for test/t/074_prep_drivers.pl: 20 connections, 50
// transactions each, three statements per transaction, prepared under the
// names postgres.js picks.  Prints "ok=<n> errors=<n> digest=<md5>".
//
// usage: node postgresjs.mjs host port user password tag
import crypto from 'node:crypto';
import postgres from 'postgres';

const [host, port, user, password, tag] = process.argv.slice(2);
const CLIENTS = 20, TXNS = 50, DEADLINE = Date.now() + 60000;

async function work(k) {
  const sql = postgres({ host, port: +port, user, password, database: 'postgres', max: 1,
    onnotice: () => {} });
  let acc = '';
  try {
    for (let i = 0; i < TXNS; i++) {
      if (Date.now() > DEADLINE)
        throw new Error('deadline passed at transaction ' + i);
      acc += await sql.begin(async tx => {
        const [r1] = await tx`SELECT ${i}::int + ${k}::int AS v, md5(${k + ':' + i}::text) AS t`;
        await tx`INSERT INTO drv_items (tag, client, i) VALUES (${tag}, ${k}, ${i})`;
        const [r3] = await tx`SELECT count(*)::int AS n FROM drv_items WHERE tag = ${tag} AND client = ${k}`;
        return `${r1.v},${r1.t},${r3.n};`;
      });
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
  return acc;
}

const rs = await Promise.allSettled([...Array(CLIENTS).keys()].map(work));
const errs = rs.filter(r => r.status === 'rejected').map(r => String(r.reason));
const digest = crypto.createHash('md5').update(rs.map(r => r.value ?? '').join('')).digest('hex');
console.log(`ok=${CLIENTS - errs.length} errors=${errs.length} digest=${digest}` +
  (errs.length ? ' ' + errs.slice(0, 3).join(' | ') : ''));
