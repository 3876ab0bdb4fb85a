/** Property tests: random response sequences against a simple model of what the client must hold. */
import t from 'tap';
import fc from 'fast-check';
import { deltaInitial, deltaOnResponse, deltaOnStreamStart } from '../src/delta-state.js';
import { sotwInitial, sotwOnResponse, sotwOnStreamStart } from '../src/sotw-state.js';
import { clusterType } from '../src/resource-types.js';
import { any, clusterJson, T } from './helpers.js';

const names = fc.constantFrom<string>('a', 'b', 'c', 'd');
const step = fc.record({
  upserts: fc.uniqueArray(fc.tuple(names, fc.integer({ min: 1, max: 3 })), { selector: ([n]) => n, maxLength: 4 }),
  removes: fc.uniqueArray(names, { maxLength: 2 }),
  bad: fc.boolean(),
  reconnect: fc.boolean(),
});

t.test('delta: ACKed responses fold into the model; NACKs change nothing; reconnect announces what is held', async (t) => {
  fc.assert(
    fc.property(fc.array(step, { maxLength: 12 }), (steps) => {
      let s = deltaOnStreamStart(deltaInitial(T.cluster, true)).state;
      const model = new Map<string, number>();
      let n = 0;
      for (const st of steps) {
        const nonce = String(++n);
        const resources = st.upserts.map(([name, secs]) => ({ name, version: `${name}${secs}`, resource: any(T.cluster, clusterJson(name, { connect_timeout: `${secs}s` })) }));
        if (st.bad) resources.push({ name: 'x', version: 'x', resource: any(T.cluster, clusterJson('x', { connect_timeout: '-1s' })) });
        const removes = st.removes.filter((r) => !st.upserts.some(([u]) => u === r));
        const o = deltaOnResponse(s, clusterType, { system_version_info: nonce, nonce, type_url: T.cluster, resources, removed_resources: removes });
        if (o.request.response_nonce !== nonce) return false;
        if (st.bad) {
          if (o.kind !== 'nack' || o.state !== s) return false;
        } else {
          if (o.kind !== 'ack') return false;
          for (const [name, secs] of st.upserts) model.set(name, secs);
          for (const r of removes) model.delete(r);
          s = o.state;
        }
        if (s.resources.size !== model.size) return false;
        for (const [name, secs] of model) if (s.resources.get(name)?.version !== `${name}${secs}`) return false;
        if (st.reconnect) {
          const r = deltaOnStreamStart(s);
          const initial = r.request?.initial_resource_versions ?? {};
          if (Object.keys(initial).length !== model.size) return false;
          s = r.state;
        }
      }
      return true;
    }),
    { numRuns: 200 },
  );
  t.pass();
});

t.test('SotW wildcard: the held set is exactly the last accepted response; version only moves on ACK', async (t) => {
  fc.assert(
    fc.property(fc.array(step, { maxLength: 12 }), (steps) => {
      let s = sotwOnStreamStart(sotwInitial(T.cluster, true)).state;
      let held = new Map<string, number>();
      let version = '';
      let n = 0;
      for (const st of steps) {
        const nonce = String(++n);
        const resources = st.upserts.map(([name, secs]) => any(T.cluster, clusterJson(name, { connect_timeout: `${secs}s` })));
        if (st.bad) resources.push(any(T.cluster, clusterJson('x', { connect_timeout: '-1s' })));
        const o = sotwOnResponse(s, clusterType, { version_info: `v${nonce}`, nonce, type_url: T.cluster, resources });
        if (o.request.response_nonce !== nonce) return false;
        if (st.bad !== (o.kind === 'nack')) return false;
        if (o.kind === 'ack') {
          held = new Map(st.upserts);
          version = `v${nonce}`;
        }
        if (o.request.version_info !== version) return false;
        s = o.state;
        if (s.resources.size !== held.size) return false;
        for (const name of held.keys()) if (!s.resources.has(name)) return false;
        if (st.reconnect) {
          const r = sotwOnStreamStart(s);
          if (r.request?.response_nonce !== '' || r.request.version_info !== version) return false;
          s = r.state;
        }
      }
      return true;
    }),
    { numRuns: 200 },
  );
  t.pass();
});
