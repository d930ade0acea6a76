// node_pg.mjs -- node-postgres (npm pg) named queries through pgslab, for
// test/t/074_prep_drivers.pl: 20 clients, 50 transactions each, three named
// statements per transaction.  Prints "ok=<n> errors=<n> digest=<md5>".
//
// usage: node node_pg.mjs host port user password tag
import crypto from 'node:crypto';
import pg from 'pg';

const [host, port, user, password, tag] = process.argv.slice(2);
const CLIENTS = 20, TXNS = 50, DEADLINE = Date.now() + 60000;
const q1 = { name: 'q1', text: 'SELECT $1::int + $2::int AS v, md5($3::text) AS t' };
const q2 = { name: 'q2', text: 'INSERT INTO drv_items (tag, client, i) VALUES ($1, $2, $3)' };
const q3 = { name: 'q3', text: 'SELECT count(*)::int AS n FROM drv_items WHERE tag = $1 AND client = $2' };

async function work(k) {
  const c = new pg.Client({ host, port: +port, user, password, database: 'postgres' });
  await c.connect();
  let acc = '';
  try {
    for (let i = 0; i < TXNS; i++) {
      if (Date.now() > DEADLINE)
        throw new Error('deadline passed at transaction ' + i);
      await c.query('BEGIN');
      const r1 = await c.query({ ...q1, values: [i, k, k + ':' + i] });
      await c.query({ ...q2, values: [tag, k, i] });
      const r3 = await c.query({ ...q3, values: [tag, k] });
      await c.query('COMMIT');
      acc += `${r1.rows[0].v},${r1.rows[0].t},${r3.rows[0].n};`;
    }
  } finally {
    await c.end();
  }
  return acc;
}

const rs = await Promise.allSettled([...Array(CLIENTS).keys()].map(work));
const errs = rs.filter(r => r.status === 'rejected').map(r => String(r.reason));
const digest = crypto.createHash('md5').update(rs.map(r => r.value ?? '').join('')).digest('hex');
console.log(`ok=${CLIENTS - errs.length} errors=${errs.length} digest=${digest}` +
  (errs.length ? ' ' + errs.slice(0, 3).join(' | ') : ''));
