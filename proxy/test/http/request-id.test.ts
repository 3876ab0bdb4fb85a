import t from 'tap';
import { newRequestId } from '../../src/http/steps/request-id.js';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

t.test('request ids are distinct version-4 UUIDs across pool refills', (t) => {
  const seen = new Set<string>();
  const bad: string[] = [];
  // 1,000 ids: several refills of the 128-id batch.
  for (let i = 0; i < 1000; i++) {
    const id = newRequestId();
    if (!V4.test(id)) bad.push(id);
    seen.add(id);
  }
  t.same(bad, []);
  t.equal(seen.size, 1000);
  t.end();
});

t.test('every hex digit position varies (the bytes are random, not a counter)', (t) => {
  const digits = Array.from({ length: 36 }, () => new Set<string>());
  for (let i = 0; i < 2000; i++) {
    const id = newRequestId();
    for (let j = 0; j < 36; j++) digits[j]!.add(id[j]!);
  }
  for (let j = 0; j < 36; j++) {
    if (j === 8 || j === 13 || j === 18 || j === 23) t.same([...digits[j]!], ['-']);
    else if (j === 14) t.same([...digits[j]!], ['4']);
    else if (j === 19) t.equal(digits[j]!.size, 4, 'variant digit: 8, 9, a, b');
    else t.equal(digits[j]!.size, 16, `position ${j}`);
  }
  t.end();
});
