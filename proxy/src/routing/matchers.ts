// The matchers' semantics live with the config model, shared with telemetry's access-log filters.
export { compileHeaderMatcher, compileQueryMatcher, compileStringMatcher, type HeaderLookup, type StringTest } from '../../../config/src/index.js';
