/**
 * The only file that touches gRPC: one ADS stream at a time to one of the management
 * servers, reconnecting with jittered exponential backoff and failing over in list order.
 * It knows nothing of the protocol: it moves already-built messages in and out.
 */
import * as grpc from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.js';
import { codecs, DELTA_METHOD, SDS_DELTA_METHOD, SDS_SOTW_METHOD, SOTW_METHOD, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse, type DiscoveryRequest, type DiscoveryResponse, type WireNode } from './protos.js';

export interface ServerAddress {
  /** IP or host name; for a pipe (port 0) the socket path, "@name" for a Linux abstract socket. */
  readonly address: string;
  readonly port: number;
  /** GrpcService.initial_metadata: sent with every stream to this server (tokens, cluster ids). */
  readonly initialMetadata?: readonly { readonly key: string; readonly value: string }[];
}

/**
 * The grpc-js target for a management server. A pipe endpoint (Istio's bootstrap reaches
 * pilot-agent over ./etc/istio/proxy/XDS) becomes `unix:<path>`; grpc-js has no
 * `unix-abstract:` resolver, so an abstract socket "@name" is `unix:` with the leading
 * NUL byte that Node's net.connect treats as abstract.
 */
export function grpcTarget(server: ServerAddress): string {
  if (server.port === 0 && isIP(server.address) === 0) {
    return server.address.startsWith('@') ? `unix:\0${server.address.slice(1)}` : `unix:${server.address}`;
  }
  return `${server.address.includes(':') ? `[${server.address}]` : server.address}:${server.port}`;
}

/** initial_metadata as gRPC metadata (keys lower-cased, as HTTP/2 requires). */
export function initialMetadata(server: ServerAddress): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const { key, value } of server.initialMetadata ?? []) {
    const k = key.toLowerCase();
    // Checked when the options are built (metadataProblem); never throw in the reconnect loop.
    if (metadataProblem(k) !== undefined) continue;
    md.add(k, k.endsWith('-bin') ? Buffer.from(value) : value);
  }
  return md;
}

/** Why a gRPC metadata key is unusable, or undefined (grpc-js would throw on it). */
export function metadataProblem(key: string): string | undefined {
  const k = key.toLowerCase();
  if (!/^[0-9a-z_.-]+$/.test(k)) return `metadata key "${key}" has characters gRPC does not allow`;
  if (k.startsWith('grpc-')) return `metadata key "${key}" is reserved by gRPC`;
  return undefined;
}

export type ApiType = 'GRPC' | 'DELTA_GRPC';
type AnyRequest = DiscoveryRequest | DeltaDiscoveryRequest;
type AnyResponse = DiscoveryResponse | DeltaDiscoveryResponse;

export interface TransportEvents {
  /** A stream was opened to `server`; the listener sends the initial requests. */
  onStreamStart(server: ServerAddress): void;
  onResponse(res: AnyResponse): void;
  onStreamEnd(error: string): void;
}

export interface TransportOptions {
  readonly servers: readonly ServerAddress[];
  readonly apiType: ApiType;
  readonly node: WireNode;
  readonly setNodeOnFirstMessageOnly: boolean;
  readonly backoff?: BackoffPolicy;
  readonly random?: () => number;
  readonly credentials?: grpc.ChannelCredentials;
  /** Which gRPC service the stream calls: the aggregated one (default) or SDS alone. */
  readonly service?: 'ads' | 'sds';
}

export class AdsTransport {
  private stream: grpc.ClientDuplexStream<AnyRequest, AnyResponse> | undefined;
  private client: grpc.Client | undefined;
  private serverIndex = 0;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private sentNode = false;
  private gotResponse = false;
  current: ServerAddress | undefined;

  constructor(private readonly opts: TransportOptions, private readonly events: TransportEvents) {
    if (opts.servers.length === 0) throw new Error('xds: no management servers configured');
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.closeStream();
  }

  get connected(): boolean {
    return this.stream !== undefined;
  }

  send(req: AnyRequest): void {
    const s = this.stream;
    if (s === undefined) return;
    const withNode = !this.opts.setNodeOnFirstMessageOnly || !this.sentNode ? { ...req, node: this.opts.node } : req;
    this.sentNode = true;
    s.write(withNode);
  }

  private connect(): void {
    if (this.stopped) return;
    const server = this.opts.servers[this.serverIndex % this.opts.servers.length]!;
    const target = grpcTarget(server);
    const client = new grpc.Client(target, this.opts.credentials ?? grpc.credentials.createInsecure(), {
      // No client keepalive pings: Go servers (istiod, go-control-plane) answer pings more
      // frequent than their enforcement policy (5 min by default) with GOAWAY too_many_pings.
      // A state-of-the-world CDS/EDS response for a large mesh easily passes gRPC's 4 MiB default.
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    });
    const delta = this.opts.apiType === 'DELTA_GRPC';
    const sds = this.opts.service === 'sds';
    const stream = client.makeBidiStreamRequest<AnyRequest, AnyResponse>(
      sds ? (delta ? SDS_DELTA_METHOD : SDS_SOTW_METHOD) : delta ? DELTA_METHOD : SOTW_METHOD,
      (v) => (delta ? codecs.deltaRequest.encode(v as DeltaDiscoveryRequest) : codecs.request.encode(v as DiscoveryRequest)),
      (b) => (delta ? codecs.deltaResponse.decode(b) : codecs.response.decode(b)),
      initialMetadata(server),
    );
    this.client = client;
    this.stream = stream;
    this.current = server;
    this.sentNode = false;
    this.gotResponse = false;
    let ended = false;
    const end = (why: string): void => {
      if (ended) return;
      ended = true;
      if (this.stream === stream) this.closeStream();
      if (this.stopped) return;
      this.events.onStreamEnd(why);
      this.scheduleReconnect();
    };
    stream.on('data', (res: AnyResponse) => {
      if (!this.gotResponse) {
        // A server that answered is a good server: start backoff afresh next time.
        this.gotResponse = true;
        this.attempt = 0;
      }
      this.events.onResponse(res);
    });
    stream.on('error', (e: Error) => end(e.message));
    stream.on('end', () => end('stream closed by server'));
    stream.on('close', () => end('stream closed'));
    this.events.onStreamStart(server);
  }

  private closeStream(): void {
    const s = this.stream;
    const c = this.client;
    this.stream = undefined;
    this.client = undefined;
    if (s) {
      s.removeAllListeners('data');
      s.on('error', () => {});
      s.cancel();
    }
    c?.close();
  }

  private scheduleReconnect(): void {
    if (!this.gotResponse) this.serverIndex++; // fail over only from a server that never answered
    const delay = backoffDelay(this.opts.backoff ?? DEFAULT_BACKOFF, this.attempt++, this.opts.random ?? Math.random);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connect();
    }, delay);
    this.timer.unref?.();
  }
}
