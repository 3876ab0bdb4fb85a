/**
 * Whether an upstream response may still bring trailers after a body of known length.
 *
 * An HTTP/2 downstream response has to decide at HEADERS whether its last DATA frame
 * carries END_STREAM or the stream waits for trailers (node's waitForTrailers; waiting
 * costs an event and an empty END_STREAM DATA frame). A body without content-length may
 * always end with trailers; one with content-length only when the upstream speaks HTTP/2
 * (HTTP/1.1 trailers need chunked framing). Envoy's HTTP/2 codec forwards an upstream's
 * trailers whatever the request's `te` said, so the upstream pool that can produce them
 * (upstream/h2-pool.ts) marks its response headers, and the downstream response
 * (messages.ts) waits for trailers on marked responses. The mark is a symbol: header
 * iteration (for-in, Object.keys) never sees it.
 */
const kTrailersPossible = Symbol('pilotfish.trailersPossible');

/** Marks response headers from an upstream that may send trailers after any body. */
export function markTrailersPossible(headers: object): void {
  (headers as Record<symbol, boolean>)[kTrailersPossible] = true;
}

export function trailersPossible(headers: object): boolean {
  return (headers as Record<symbol, boolean | undefined>)[kTrailersPossible] === true;
}
