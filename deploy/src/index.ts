export { EndpointSliceWatcher, endpointsFromSlices, type SliceTarget, type EndpointSink, type WatcherOptions } from './endpointslices.js';
