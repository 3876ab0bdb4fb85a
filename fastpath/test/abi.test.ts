import t from 'tap';
import { execFileSync } from 'node:child_process';
import { abiDumpPath, ensureBuilt } from '../src/build.js';
import { COUNTERS, LAYOUT, ABI_VERSION, MAX_SERVICES, MAX_BACKENDS, MAGLEV_MAX, SVC_F_USERSPACE, CFG_F_FIB, CFG_F_EVENTS,
  CFG_F_INTERCEPT, CFG_F_SOCKMAP, EV_FLOW_NEW, EV_CONNECT_REDIRECT, encodeSockAddr, decodeSockAddr, encodeAddr, decodeAddr,
  encodeFlowKey, decodeFlowKey, CFG_F_OBSERVE, CFG_F_CONN_EVENTS, EV_CONN_OPEN, EV_CONN_CLOSE, EV_UDP_CONNECT, DIR_OUTBOUND,
  DIR_INBOUND, OUT_NONE, OUT_OK, OUT_REFUSED, OUT_RESET, OUT_TIMEOUT, OUT_ERROR, OUT_ABORTED, OUTCOMES, CONN_F_PROXY,
  CONN_F_REDIRECTED, DEST_STATS_FIELDS, LAYOUT as L2, parseDump, RT_HIST } from '../src/abi.js';
import fc from 'fast-check';

// The C side of the ABI needs only a C compiler (no root, no BPF).
const built = await ensureBuilt();
if (!built.ok) {
  t.plan(0, `skip: abi-dump not buildable: ${built.reason}`);
} else {
  const dump = execFileSync(abiDumpPath(), { encoding: 'utf8' });
  const c = new Map<string, number>();
  for (const line of dump.trim().split('\n')) {
    const [kind, name, value] = line.split(' ');
    c.set(`${kind} ${name}`, Number(value));
  }

  t.test('struct sizes and offsets match fp_abi.h', async (t) => {
    for (const [struct, fields] of Object.entries(LAYOUT)) {
      t.equal(fields.size, c.get(`size ${struct}`), `sizeof(struct ${struct})`);
      for (const [field, off] of Object.entries(fields)) {
        if (field === 'size') continue;
        t.equal(off, c.get(`offset ${struct}.${field}`), `offsetof(${struct}, ${field})`);
      }
    }
    // and the C side checks nothing that TypeScript does not know about
    const known = new Set(Object.entries(LAYOUT).flatMap(([s, f]) => Object.keys(f).map((k) => (k === 'size' ? `size ${s}` : `offset ${s}.${k}`))));
    for (const k of c.keys()) if (!k.startsWith('const ')) t.ok(known.has(k), `${k} is encoded in src/abi.ts`);
  });

  t.test('constants and counter order match', async (t) => {
    const consts: Record<string, number> = {
      FP_ABI_VERSION: ABI_VERSION, FP_MAX_SERVICES: MAX_SERVICES, FP_MAX_BACKENDS: MAX_BACKENDS, FP_MAGLEV_MAX: MAGLEV_MAX,
      FP_SVC_F_USERSPACE: SVC_F_USERSPACE, FP_CFG_F_FIB: CFG_F_FIB, FP_CFG_F_EVENTS: CFG_F_EVENTS,
      FP_CFG_F_INTERCEPT: CFG_F_INTERCEPT, FP_CFG_F_SOCKMAP: CFG_F_SOCKMAP, FP_EV_FLOW_NEW: EV_FLOW_NEW,
      FP_EV_CONNECT_REDIRECT: EV_CONNECT_REDIRECT, FP_CFG_F_OBSERVE: CFG_F_OBSERVE, FP_CFG_F_CONN_EVENTS: CFG_F_CONN_EVENTS,
      FP_EV_CONN_OPEN: EV_CONN_OPEN, FP_EV_CONN_CLOSE: EV_CONN_CLOSE, FP_EV_UDP_CONNECT: EV_UDP_CONNECT,
      FP_DIR_OUTBOUND: DIR_OUTBOUND, FP_DIR_INBOUND: DIR_INBOUND, FP_OUT_NONE: OUT_NONE, FP_OUT_OK: OUT_OK,
      FP_OUT_REFUSED: OUT_REFUSED, FP_OUT_RESET: OUT_RESET, FP_OUT_TIMEOUT: OUT_TIMEOUT, FP_OUT_ERROR: OUT_ERROR,
      FP_OUT_ABORTED: OUT_ABORTED, FP_CONN_F_PROXY: CONN_F_PROXY, FP_CONN_F_REDIRECTED: CONN_F_REDIRECTED, FP_RT_HIST: RT_HIST,
    };
    t.equal(OUTCOMES[OUT_ABORTED], 'aborted', 'outcome names follow the constants');
    t.equal(DEST_STATS_FIELDS.length * 8, L2.fp_dest_stats.size, 'every fp_dest_stats field is decoded');
    for (const [name, v] of Object.entries(consts)) t.equal(v, c.get(`const ${name}`), name);
    COUNTERS.forEach(([name], i) => t.equal(c.get(`const ${name}`), i, `${name} is counter ${i}`));
    t.equal(c.get('const FP_CNT__MAX'), COUNTERS.length, 'no counter missing in TypeScript');
  });
}

t.test('map dumps parse whatever the helper prints', async (t) => {
  t.same(parseDump(' 01:ff 0203:0405').map((e) => [e.key.toString('hex'), e.value.toString('hex')]), [['01', 'ff'], ['0203', '0405']]);
  t.same(parseDump(''), []);
  fc.assert(fc.property(fc.array(fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 24 }), fc.uint8Array({ minLength: 1, maxLength: 112 }))), (entries) => {
    const line = entries.map(([k, v]) => ` ${Buffer.from(k).toString('hex')}:${Buffer.from(v).toString('hex')}`).join('');
    t.same(parseDump(line).map((e) => [[...e.key], [...e.value]]), entries.map(([k, v]) => [[...k], [...v]]));
  }), { numRuns: 100 });
});

t.test('address encoding round-trips', async (t) => {
  t.same([...encodeAddr('198.18.0.10').bytes], [198, 18, 0, 10, ...Array(12).fill(0)]);
  t.equal(encodeAddr('2001:2::10').bytes.toString('hex'), '20010002000000000000000000000010');
  t.equal(encodeAddr('::ffff:198.18.0.1').bytes.toString('hex'), '00000000000000000000ffffc6120001');
  t.equal(decodeAddr(encodeAddr('::1').bytes, 6), '::1');
  t.same(decodeSockAddr(encodeSockAddr({ address: '198.18.1.1', port: 8080, proto: 'UDP' })), { address: '198.18.1.1', port: 8080, family: 4, proto: 17 });
  fc.assert(fc.property(fc.ipV4(), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), (ip, sp, dp) => {
    const k = { src: ip, dst: '198.18.0.1', sport: sp, dport: dp, proto: 6, family: 4 };
    t.same(decodeFlowKey(encodeFlowKey(k)), k);
  }), { numRuns: 200 });
  fc.assert(fc.property(fc.ipV6(), (ip) => {
    const b = encodeAddr(ip).bytes;
    t.same(encodeAddr(decodeAddr(b, 6)).bytes, b);
  }), { numRuns: 300 });
});
