/** Crafts and reads Ethernet/IPv4/IPv6/TCP/UDP frames for BPF_PROG_TEST_RUN fixtures. */
import { decodeAddr, encodeAddr } from '../../src/abi.js';

export interface PacketSpec {
  readonly family: 4 | 6;
  readonly proto: 'TCP' | 'UDP' | number;
  readonly src: string;
  readonly dst: string;
  readonly sport?: number;
  readonly dport?: number;
  readonly payload?: string;
  readonly srcMac?: string;
  readonly dstMac?: string;
  /** IPv4: set More Fragments. IPv6: add a fragment extension header. */
  readonly fragment?: boolean;
  /** IPv4: add one 4-byte option (NOP x4), making ihl = 6. */
  readonly ipOptions?: boolean;
  /** UDP over IPv4 without a checksum. */
  readonly zeroUdpChecksum?: boolean;
  readonly tcpFlags?: number;
}

const mac = (s: string): Buffer => Buffer.from(s.replace(/:/g, ''), 'hex');

export function sum16(b: Buffer, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length % 2) s += b[b.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function pseudo(family: 4 | 6, src: Buffer, dst: Buffer, proto: number, len: number): Buffer {
  if (family === 4) {
    const p = Buffer.alloc(12);
    src.copy(p, 0, 0, 4);
    dst.copy(p, 4, 0, 4);
    p[9] = proto;
    p.writeUInt16BE(len, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  src.copy(p, 0);
  dst.copy(p, 16);
  p.writeUInt32BE(len, 32);
  p[39] = proto;
  return p;
}

export function buildPacket(s: PacketSpec): Buffer {
  const protoNum = s.proto === 'TCP' ? 6 : s.proto === 'UDP' ? 17 : s.proto;
  const payload = Buffer.from(s.payload ?? 'hello');
  let l4: Buffer;
  if (protoNum === 6) {
    l4 = Buffer.alloc(20 + payload.length);
    l4.writeUInt16BE(s.sport ?? 40000, 0);
    l4.writeUInt16BE(s.dport ?? 80, 2);
    l4.writeUInt32BE(1000, 4);
    l4[12] = 5 << 4;
    l4[13] = s.tcpFlags ?? 0x02;
    l4.writeUInt16BE(65535, 14);
    payload.copy(l4, 20);
  } else if (protoNum === 17) {
    l4 = Buffer.alloc(8 + payload.length);
    l4.writeUInt16BE(s.sport ?? 40000, 0);
    l4.writeUInt16BE(s.dport ?? 53, 2);
    l4.writeUInt16BE(l4.length, 4);
    payload.copy(l4, 8);
  } else {
    l4 = Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 1, 0, 1]), payload]);
  }
  const src = encodeAddr(s.src).bytes;
  const dst = encodeAddr(s.dst).bytes;
  if (protoNum === 6 || protoNum === 17) {
    const off = protoNum === 6 ? 16 : 6;
    const c = (~sum16(l4, sum16(pseudo(s.family, src, dst, protoNum, l4.length)))) & 0xffff;
    l4.writeUInt16BE(protoNum === 17 && s.zeroUdpChecksum ? 0 : c === 0 && protoNum === 17 ? 0xffff : c, off);
  }
  let l3: Buffer;
  if (s.family === 4) {
    const opt = s.ipOptions ? Buffer.from([1, 1, 1, 1]) : Buffer.alloc(0);
    l3 = Buffer.alloc(20 + opt.length);
    l3[0] = 0x40 | ((20 + opt.length) / 4);
    l3.writeUInt16BE(l3.length + l4.length, 2);
    l3.writeUInt16BE(0x1234, 4);
    l3.writeUInt16BE(s.fragment ? 0x2000 : 0x4000, 6);
    l3[8] = 64;
    l3[9] = protoNum;
    src.copy(l3, 12, 0, 4);
    dst.copy(l3, 16, 0, 4);
    opt.copy(l3, 20);
    l3.writeUInt16BE(~sum16(l3) & 0xffff, 10);
  } else {
    const frag = s.fragment ? Buffer.from([protoNum, 0, 0, 1, 0, 0, 0, 42]) : Buffer.alloc(0);
    l3 = Buffer.alloc(40 + frag.length);
    l3.writeUInt32BE(0x60000000, 0);
    l3.writeUInt16BE(frag.length + l4.length, 4);
    l3[6] = s.fragment ? 44 : protoNum;
    l3[7] = 64;
    src.copy(l3, 8);
    dst.copy(l3, 24);
    frag.copy(l3, 40);
  }
  const eth = Buffer.concat([mac(s.dstMac ?? '02:00:00:00:00:01'), mac(s.srcMac ?? '02:00:00:00:00:02'), Buffer.from(s.family === 4 ? [8, 0] : [0x86, 0xdd])]);
  return Buffer.concat([eth, l3, l4]);
}

export interface ParsedPacket {
  srcMac: string;
  dstMac: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
  ipChecksumOk: boolean;
  l4ChecksumOk: boolean;
  l4Checksum: number;
  payload: string;
}

const macStr = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** Reads back a simple (no options, no extension headers) frame and verifies its checksums. */
export function parsePacket(p: Buffer): ParsedPacket {
  const v4 = p.readUInt16BE(12) === 0x0800;
  const l3 = p.subarray(14);
  const ihl = v4 ? (l3[0]! & 15) * 4 : 40;
  const proto = v4 ? l3[9]! : l3[6]!;
  const src = v4 ? l3.subarray(12, 16) : l3.subarray(8, 24);
  const dst = v4 ? l3.subarray(16, 20) : l3.subarray(24, 40);
  const l4 = l3.subarray(ihl, v4 ? l3.readUInt16BE(2) : 40 + l3.readUInt16BE(4));
  const fmt = (b: Buffer): string => decodeAddr(Buffer.concat([b, Buffer.alloc(16)]).subarray(0, 16), v4 ? 4 : 6);
  const csumOff = proto === 6 ? 16 : 6;
  const l4Checksum = l4.readUInt16BE(csumOff);
  const l4ChecksumOk = (proto === 17 && v4 && l4Checksum === 0) ||
    sum16(l4, sum16(pseudo(v4 ? 4 : 6, Buffer.concat([src, Buffer.alloc(16)]), Buffer.concat([dst, Buffer.alloc(16)]), proto, l4.length))) === 0xffff;
  return {
    dstMac: macStr(p.subarray(0, 6)),
    srcMac: macStr(p.subarray(6, 12)),
    src: fmt(src),
    dst: fmt(dst),
    sport: l4.readUInt16BE(0),
    dport: l4.readUInt16BE(2),
    proto,
    ipChecksumOk: !v4 || sum16(l3.subarray(0, ihl)) === 0xffff,
    l4ChecksumOk,
    l4Checksum,
    payload: l4.subarray(proto === 6 ? 20 : 8).toString(),
  };
}
