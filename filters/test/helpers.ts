import type { HttpFilterConfig } from '../../config/src/index.js';
import type { RequestHeadersView, ResponseHeadersView, StreamInfo, HeaderMap } from '../src/index.js';

export const ROUTER: HttpFilterConfig = {
  name: 'envoy.filters.http.router',
  typeUrl: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  config: {},
  disabled: false,
  isOptional: false,
};

export function filter(name: string, type: string, config: Record<string, unknown> = {}, extra: Partial<HttpFilterConfig> = {}): HttpFilterConfig {
  return {
    name,
    typeUrl: type.includes('/') || type.startsWith('pilotfish') ? type : `type.googleapis.com/${type}`,
    config,
    disabled: false,
    isOptional: false,
    ...extra,
  };
}

let seq = 0;
export function info(over: Partial<StreamInfo> = {}): StreamInfo {
  return {
    requestId: `req-${++seq}`,
    startTime: Date.now(),
    downstreamAddress: '10.0.0.1',
    downstreamLocalPort: 8080,
    peerIdentity: undefined,
    routeName: 'r',
    virtualHostName: 'vh',
    clusterName: 'c',
    perFilterConfig: undefined,
    metadata: new Map(),
    ...over,
  };
}

export function req(over: Partial<RequestHeadersView> = {}, headers: HeaderMap = {}): RequestHeadersView {
  return { method: 'GET', path: '/', authority: 'example.com', scheme: 'http', headers, ...over };
}

export function res(status = 200, headers: HeaderMap = {}): ResponseHeadersView {
  return { status, headers };
}
