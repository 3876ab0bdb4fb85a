/**
 * google.protobuf.Struct / Value / ListValue / Any in protobuf's binary wire format,
 * written by hand: Istio's peer metadata travels as a serialized Struct (base64 in the
 * `x-envoy-peer-metadata` header, inside an Any after the TCP exchange's header), and
 * these four messages are all the exchange needs — no reflection library on the path.
 *
 * Encoding is deterministic as Istio's (map entries sorted by key), so the same node
 * metadata always gives the same bytes. Decoding never throws at the caller: bad input
 * gives `{ ok: false, reason }`, as a peer's bytes are untrusted.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonStruct = { [key: string]: JsonValue };

export const STRUCT_TYPE_URL = 'type.googleapis.com/google.protobuf.Struct';

/** Nesting limit for decoding: a peer cannot make us recurse without bound. */
const MAX_DEPTH = 32;

// ------------------------------------------------------------------ encoding

class Writer {
  private buf = new Uint8Array(256);
  private len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  varint(v: number): void {
    this.ensure(10);
    // Values here are lengths, tags and enum/bool values: non-negative and < 2^53.
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, 2);
    this.varint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  double(field: number, v: number): void {
    this.tag(field, 1);
    this.ensure(8);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 8).setFloat64(0, v, true);
    this.len += 8;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

function encodeValue(v: JsonValue): Uint8Array {
  const w = new Writer();
  if (v === null) {
    w.tag(1, 0);
    w.varint(0);
  } else if (typeof v === 'number') w.double(2, v);
  else if (typeof v === 'string') w.bytes(3, utf8.encode(v));
  else if (typeof v === 'boolean') {
    w.tag(4, 0);
    w.varint(v ? 1 : 0);
  } else if (Array.isArray(v)) {
    const list = new Writer();
    for (const item of v) list.bytes(1, encodeValue(item));
    w.bytes(6, list.finish());
  } else w.bytes(5, encodeStruct(v));
  return w.finish();
}

/** Serializes a Struct deterministically (map entries in key order, as Istio does). */
export function encodeStruct(s: JsonStruct): Uint8Array {
  const w = new Writer();
  for (const key of Object.keys(s).sort()) {
    const entry = new Writer();
    entry.bytes(1, utf8.encode(key));
    entry.bytes(2, encodeValue(s[key]!));
    w.bytes(1, entry.finish());
  }
  return w.finish();
}

/** An Any holding `value` (already serialized) of `typeUrl`. */
export function encodeAny(typeUrl: string, value: Uint8Array): Uint8Array {
  const w = new Writer();
  w.bytes(1, utf8.encode(typeUrl));
  w.bytes(2, value);
  return w.finish();
}

// ------------------------------------------------------------------ decoding

class DecodeFailure extends Error {}

class Reader {
  pos: number;
  constructor(private readonly buf: Uint8Array, start = 0, readonly end = buf.length) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new DecodeFailure('truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 0x80;
    }
    throw new DecodeFailure('varint longer than 10 bytes');
  }

  /** A length-delimited field's bounds. */
  sub(): Reader {
    const n = this.varint();
    if (n > this.end - this.pos) throw new DecodeFailure(`length ${n} runs past the end`);
    const r = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }

  bytes(): Uint8Array {
    const r = this.sub();
    return this.buf.subarray(r.pos, r.end);
  }

  string(): string {
    const b = this.bytes();
    // Metadata keys and values are short and almost always ASCII: decode those directly
    // (TextDecoder costs ~1 us per call); anything else goes through the strict decoder.
    if (b.length <= 64) {
      let ascii = true;
      for (let i = 0; i < b.length; i++) if (b[i]! >= 0x80) {
        ascii = false;
        break;
      }
      if (ascii) return String.fromCharCode.apply(null, b as unknown as number[]);
    }
    try {
      return utf8Strict.decode(b);
    } catch {
      throw new DecodeFailure('string is not valid UTF-8');
    }
  }

  double(): number {
    if (this.end - this.pos < 8) throw new DecodeFailure('truncated double');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.varint();
        return;
      case 1:
        if (this.end - this.pos < 8) throw new DecodeFailure('truncated fixed64');
        this.pos += 8;
        return;
      case 2:
        this.sub();
        return;
      case 5:
        if (this.end - this.pos < 4) throw new DecodeFailure('truncated fixed32');
        this.pos += 4;
        return;
      default:
        throw new DecodeFailure(`unsupported wire type ${wire}`);
    }
  }
}

function readValue(r: Reader, depth: number): JsonValue {
  if (depth > MAX_DEPTH) throw new DecodeFailure(`nested deeper than ${MAX_DEPTH}`);
  // An empty Value (no kind set) reads as null, as protobuf's JSON mapping does.
  let v: JsonValue = null;
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 1 && wire === 0) {
      r.varint();
      v = null;
    } else if (field === 2 && wire === 1) v = r.double();
    else if (field === 3 && wire === 2) v = r.string();
    else if (field === 4 && wire === 0) v = r.varint() !== 0;
    else if (field === 5 && wire === 2) v = readStruct(r.sub(), depth + 1);
    else if (field === 6 && wire === 2) {
      const list = r.sub();
      const items: JsonValue[] = [];
      while (!list.done) {
        const t = list.varint();
        if (t === 1 * 8 + 2) items.push(readValue(list.sub(), depth + 1));
        else list.skip(t % 8);
      }
      v = items;
    } else r.skip(wire);
  }
  return v;
}

function readStruct(r: Reader, depth: number): JsonStruct {
  if (depth > MAX_DEPTH) throw new DecodeFailure(`nested deeper than ${MAX_DEPTH}`);
  const out: JsonStruct = {};
  while (!r.done) {
    const tag = r.varint();
    if (tag !== 1 * 8 + 2) {
      r.skip(tag % 8);
      continue;
    }
    const entry = r.sub();
    let key = '';
    let value: JsonValue = null;
    while (!entry.done) {
      const t = entry.varint();
      if (t === 1 * 8 + 2) key = entry.string();
      else if (t === 2 * 8 + 2) value = readValue(entry.sub(), depth + 1);
      else entry.skip(t % 8);
    }
    // __proto__ as a key would not become an own property of a plain object.
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

function guard<T>(what: string, f: () => T): Decoded<T> {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (e instanceof DecodeFailure) return { ok: false, reason: `${what}: ${e.message}` };
    throw e;
  }
}

export function decodeStruct(bytes: Uint8Array): Decoded<JsonStruct> {
  return guard('Struct', () => readStruct(new Reader(bytes), 0));
}

export function decodeAny(bytes: Uint8Array): Decoded<{ typeUrl: string; value: Uint8Array }> {
  return guard('Any', () => {
    const r = new Reader(bytes);
    let typeUrl = '';
    let value: Uint8Array = new Uint8Array(0);
    while (!r.done) {
      const tag = r.varint();
      if (tag === 1 * 8 + 2) typeUrl = r.string();
      else if (tag === 2 * 8 + 2) value = r.bytes();
      else r.skip(tag % 8);
    }
    return { typeUrl, value };
  });
}
